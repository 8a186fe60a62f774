"""protos/ passes `buf lint` (STANDARD plus COMMENTS, buf.yaml) and is `buf format`ted.

buf comes from npm (@bufbuild/buf); .ci/run installs it into .ci/.buf, and so can a developer:
    npm install --prefix .ci/.buf @bufbuild/buf@1.75.0
Outside CI a machine without buf skips these tests; in CI (CI=true) a missing buf fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def buf() -> str:
    local = ROOT / ".ci" / ".buf" / "node_modules" / ".bin" / "buf"
    found = str(local) if local.exists() else shutil.which("buf")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("buf is not installed: .ci/run installs it with npm into .ci/.buf")
        pytest.skip("buf is not installed: npm install --prefix .ci/.buf @bufbuild/buf@1.75.0")
    return found


def run_buf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([buf(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_buf_lint_passes() -> None:
    result = run_buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_format_has_nothing_to_change() -> None:
    result = run_buf("format", "--diff", "--exit-code")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_yaml_exempts_only_the_service_name() -> None:
    config = (ROOT / "buf.yaml").read_text()
    assert "- STANDARD" in config and "- COMMENTS" in config
    excepted = config.split("except:", 1)[1]
    assert [line.strip() for line in excepted.splitlines() if line.strip().startswith("- ")] == ["- SERVICE_SUFFIX"]
