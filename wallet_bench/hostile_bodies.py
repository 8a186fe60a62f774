"""The worst bodies the edge's size cap allows, and what they cost everyone else (issue 11).

    python -m wallet_bench.hostile_bodies [--seconds 5] [--posters 1] [--route /bets]

Starts `wallet edge` alone on 127.0.0.1 (every body here is refused before the core is called, so
no core is needed), measures GET /healthz latency idle, then again while `--posters` clients post
one kind of worst body back to back, for each kind in turn. Prints p50 / p99 / max of /healthz
and the time the edge took to answer the hostile body. DESIGN section 5: "no body within the cap
costs more than milliseconds of the event loop"; issue 11 asks that /healthz keeps answering
within 100 ms meanwhile.

Each body is valid JSON up to its last key, which repeats one before it: the edge has to read
all of it before it can refuse it (402 invalid_request on /bets, 400 on /winners).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from wallet_bench.services import Service, _spawn, _stop, _wait_http, free_port
from wallet_bench.stats import percentiles

CAP = 1_048_576  # WALLET_EDGE_MAX_BODY_BYTES' default

_BET = {
    "user": {"client": "bench", "uid": 1, "ip": "203.0.113.7"},
    "pool": {"client": "bench", "currency": "EUR", "game": "betflex", "uid": 5, "overdraw": "3.00"},
    "bet": {"uid": 77, "amount": "1.00"},
}
_WINNER = {
    "user": {"client": "bench", "uid": "1", "name": "x"},
    "bet": {"uid": 77, "currency": "EUR", "amount": "1.00", "payout": "2.00", "odds": 2, "result": "won"},
}


def _fill(prefix: bytes, unit: Callable[[int], bytes], suffix: bytes, cap: int) -> bytes:
    """prefix + unit(0) + "," + unit(1) ... + suffix, as many units as fit in `cap` bytes."""
    parts, size, n = [], len(prefix) + len(suffix), 0
    while True:
        part = unit(n) + b","
        if size + len(part) > cap:
            break
        parts.append(part)
        size += len(part)
        n += 1
    body = prefix + b"".join(parts).rstrip(b",") + suffix
    assert len(body) <= cap, len(body)
    return body


def worst_bodies(route: str, cap: int = CAP) -> dict[str, bytes]:
    """Bodies of at most `cap` bytes that cost the edge the most to refuse, by name.

    Each is `{"bets" | "pools": [one valid entry], "extra": <filler>, "extra": 0}`: the duplicate
    comes last (in the filler's own object, or `extra`), so the whole body is read before it is refused.
    """
    head = {"bets": [_BET]} if route == "/bets" else {"pools": [{"pool": {"uid": 5}, "bets": [_WINNER]}]}
    prefix = json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"extra":'
    fillers: dict[str, tuple[bytes, Callable[[int], bytes], bytes]] = {
        # the body: one object of many distinct keys, the last one twice (the check was quadratic)
        "distinct keys in one object": (b"{", lambda n: b'"k%d":0' % n, b',"k":0,"k":0}'),
        "empty objects": (b"[", lambda n: b"{}", b"]"),
        "one-key objects": (b"[", lambda n: b'{"a":0}', b"]"),
        "4300-digit integers": (b"[", lambda n: b"9" * 4300, b"]"),
        "short strings": (b"[", lambda n: b'""', b"]"),
    }
    suffix = b',"extra":0}'
    return {
        name: _fill(prefix + start, unit, end + suffix, cap) for name, (start, unit, end) in fillers.items()
    }


def _probe(url: str, stop: threading.Event, interval: float = 0.01) -> tuple[list[float], list[int]]:
    """GET /healthz every `interval` s until `stop`: latencies (s) and statuses."""
    latencies, statuses = [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            status = http.get("/healthz").status_code
            latencies.append(time.perf_counter() - started)
            statuses.append(status)
            time.sleep(interval)
    return latencies, statuses


def _post_until(url: str, route: str, body: bytes, token: str, stop: threading.Event,
                answers: list[tuple[int, float]]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            response = http.post(route, content=body, headers=headers)
            answers.append((response.status_code, time.perf_counter() - started))


def _ms(values: list[float]) -> str:
    p = percentiles([v * 1000 for v in values])
    if p["max"] is None:
        return "no answers"
    return f"p50 {p['p50']:6.1f}  p99 {p['p99']:6.1f}  max {p['max']:6.1f} ms  (n={len(values)})"


def measure(url: str, token: str, route: str, seconds: float, posters: int) -> bool:
    """Print the figures; False when a /healthz failed or a hostile body was not refused."""
    ok = True
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    latencies, statuses = _probe(url, stop)
    ok &= set(statuses) == {200}
    print(f"{'idle':30} /healthz {_ms(latencies)}")
    for name, body in worst_bodies(route).items():
        stop = threading.Event()
        answers: list[tuple[int, float]] = []
        threads = [threading.Thread(target=_post_until, args=(url, route, body, token, stop, answers))
                   for _ in range(posters)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # the posters are under way
        threading.Timer(seconds, stop.set).start()
        latencies, statuses = _probe(url, stop)
        for thread in threads:
            thread.join()
        refused = {status for status, _ in answers}
        ok &= set(statuses) == {200} and refused == {402 if route == "/bets" else 400}
        print(f"{name:30} /healthz {_ms(latencies)}; the {len(body) // 1024} KiB body: answered "
              f"{sorted(refused)} in {_ms([t for _, t in answers])}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per kind of body, and idle")
    parser.add_argument("--posters", type=int, default=1, help="clients posting the hostile body at once")
    parser.add_argument("--route", choices=["/bets", "/winners"], default="/bets")
    args = parser.parse_args(argv)

    token = secrets.token_urlsafe(24)
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")} | {
        "WALLET_HTTP_ADDR": address, "WALLET_CORE_ADDR": f"127.0.0.1:{free_port()}",  # no core: never called
        "WALLET_CORE_TOKEN": "unused", "WALLET_EDGE_TOKENS": f"{token}=*", "WALLET_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="wallet-hostile-") as logs:
        process, log_path = _spawn("edge", ["edge"], env, Path(logs))
        edge = Service("edge", process, address, log_path)
        try:
            _wait_http(edge, 60, path="/healthz")  # no core behind it: it serves, it is never ready
            print(f"edge pid {edge.pid}, {args.route}, {args.posters} poster(s), {args.seconds:g} s each, "
                  f"{os.cpu_count()} CPUs")
            ok = measure(f"http://{address}", token, args.route, args.seconds, args.posters)
        finally:
            _stop(edge)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
