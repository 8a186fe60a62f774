"""Where the time goes: py-spy samples a service (by pid) during a point; a text summary of the hot spots.

py-spy runs outside the profiled process (`--nonblocking`: it never pauses it), so the profiled
code is unchanged. The raw (collapsed stacks) file is kept next to the results; the summary lists
the functions with the most samples on top of the stack (self) and anywhere in it (total).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass
class Spy:
    name: str
    process: subprocess.Popen[bytes] | None
    path: Path
    error: str = ""


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(name: str, pid: int, duration: float, work: Path) -> Spy:
    path = work / f"profile-{name}-{pid}.txt"
    exe = _py_spy()
    if exe is None:
        return Spy(name, None, path, "py-spy is not installed (pip install py-spy)")
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration))), "--rate", "100",
            "--nonblocking", "--gil", "--format", "raw", "--output", str(path)]
    return Spy(name, subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path)


def finish(spy: Spy, keep_dir: Path, top: int = 15) -> dict[str, Any]:
    if spy.process is None:
        return {"error": spy.error}
    try:
        _, stderr = spy.process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.process.kill()
        return {"error": "py-spy did not finish"}
    if not spy.path.exists():
        return {"error": f"py-spy failed: {stderr.decode(errors='replace')[-500:]}"}
    kept = keep_dir / spy.path.name
    shutil.copy(spy.path, kept)
    summary = summarize(spy.path.read_text(), top=top)
    summary["raw"] = str(kept)
    return summary


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match.group('func')} ({file})"


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and total sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "percent": round(100.0 * n / samples, 1)} for f, n in counter.most_common(top)]

    return {"samples": samples, "self": share(own), "total": share(total)}
