"""`wallet core --workers N`: N core processes serving one gRPC port on one database, and their supervisor.

The process the operator started is the supervisor: it serves nothing itself. It starts N
workers, each `python -m wallet_cli core` with one process and SO_REUSEPORT on the same
HOST:PORT (the kernel spreads the connections over them), each with its own /metrics on
PORT+i of `--metrics HOST:PORT` (i = 0..N-1; port 0: each picks a free one and logs it).

- SIGTERM or SIGINT to the supervisor is forwarded to every worker, which drains its calls in
  flight and exits; the supervisor exits when all have, 0 if every one exited 0.
- A worker that exits on its own (a crash, a kill, even status 0) is not restarted: the
  supervisor logs it, stops the others and exits non-zero (the worker's status, 1 if it was
  killed by a signal or exited 0), so a process manager restarts the whole core. A worker
  still running STOP_TIMEOUT seconds after the stop is killed (SIGKILL), and the exit is 1.
- The workers run in a session of their own (a terminal's Ctrl-C reaches them once, through
  the supervisor) and are bound to it: if the supervisor dies, even by SIGKILL, the kernel
  sends each worker SIGTERM (Linux PR_SET_PDEATHSIG), so no worker keeps the port orphaned.

Every check a worker makes at start (settings, the port, the database, its schema and currency
scales, the migrations with --migrate) is made once by the supervisor before any worker starts,
so a mistake is one line, not N (wallet_cli.cli `core`, wallet_cli.bootstrap.check_core).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from wallet_cli.errors import CommandError, Exit

if TYPE_CHECKING:
    from wallet_core.config import Settings

log = logging.getLogger("wallet_cli.supervisor")

STOP_TIMEOUT = 30.0  # seconds a worker has to drain after the stop (the core's own grace is 10 s)
POLL_SECONDS = 0.1  # how often the supervisor looks at its workers
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    metrics_addr: str | None
    done: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


def metrics_addresses(metrics_addr: str | None, count: int) -> list[str | None]:
    """Each worker's /metrics address: PORT+i of HOST:PORT; every worker HOST:0 with port 0; None when off."""
    if metrics_addr is None:
        return [None] * count
    host, _, port_text = metrics_addr.rpartition(":")
    port = int(port_text)
    if port == 0:
        return [metrics_addr] * count
    if port + count - 1 > 65535:
        raise CommandError(f"--workers {count} serves /metrics on ports {port}..{port + count - 1} of "
                           f"--metrics {metrics_addr}, past 65535: choose a lower port", reason="INVALID_SETTINGS")
    return [f"{host}:{port + i}" for i in range(count)]


def worker_environment(settings: Settings, config: Path | None, metrics_addr: str | None) -> dict[str, str]:
    """A worker's environment: the supervisor's, with the settings a command-line option may have set
    (they win over the file and the environment, as the option did) and one process with SO_REUSEPORT."""
    env = dict(os.environ)
    env.update({
        "WALLET_DATABASE_URL": settings.database_url.render_as_string(hide_password=False),
        "WALLET_GRPC_ADDR": settings.grpc_addr,
        "WALLET_METRICS_ADDR": metrics_addr or "",  # empty: no metrics port
        "WALLET_INSECURE_NO_AUTH": "true" if settings.insecure_no_auth else "false",
        "WALLET_CORE_WORKERS": "1",
        "WALLET_GRPC_REUSE_PORT": "true",
    })
    if config is not None:
        env["WALLET_CONFIG"] = str(config)
    return env


def follow_supervisor(pid: int) -> None:
    """In a worker: be sent SIGTERM (and so drain and exit) when the supervisor `pid` dies, however it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot ask to be stopped with the supervisor (prctl: %s)", os.strerror(ctypes.get_errno()))
    if os.getppid() != pid:  # it died before we asked: nobody would stop us
        raise CommandError(f"the supervisor (pid {pid}) is gone: not starting", code=Exit.FAILED,
                           reason="SUPERVISOR_GONE")


class Supervisor:
    """Starts the workers, forwards stop signals to them, and waits for all of them to exit."""

    def __init__(self, settings: Settings, config: Path | None) -> None:
        self.settings = settings
        self.config = config
        self.count = settings.core_workers
        self.workers: list[Worker] = []
        self._signal: int | None = None  # the stop signal received, not yet forwarded
        self._stopping_since: float | None = None
        self.status = 0  # the exit status: the first failure's

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index, metrics_addr in enumerate(metrics_addresses(self.settings.metrics_addr, self.count)):
                if self._signal is not None or self._stopping_since is not None:
                    break
                self._start(index, metrics_addr)
            log.info("wallet core: %d workers on %s (SO_REUSEPORT), supervisor pid %d",
                     len(self.workers), self.settings.grpc_addr, os.getpid())
            while not all(w.done for w in self.workers):
                self._step()
                time.sleep(POLL_SECONDS)
            self._step()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        log.info("wallet core: every worker stopped (exit status %d)", self.status)
        return self.status

    def _start(self, index: int, metrics_addr: str | None) -> None:
        env = worker_environment(self.settings, self.config, metrics_addr)
        process = subprocess.Popen(
            [sys.executable, "-m", "wallet_cli", "core", "--worker-of", str(os.getpid())],
            env=env, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.workers.append(Worker(index, process, metrics_addr))
        metrics = f", metrics on http://{metrics_addr}/metrics" if metrics_addr else ""
        log.info("worker %d started: pid %d%s", index, process.pid, metrics)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signal = signum  # forwarded (and logged) by the loop, outside the signal handler

    def _step(self) -> None:
        if self._signal is not None:
            signum, self._signal = self._signal, None
            log.info("received %s: stopping the workers (they drain their calls in flight)",
                     signal.Signals(signum).name)
            self._stop(signum)
        for worker in self.workers:
            if worker.done:
                continue
            code = worker.process.poll()
            if code is None:
                continue
            worker.done = True
            if self._stopping_since is not None and code == 0:
                log.info("worker %d (pid %d) stopped", worker.index, worker.pid)
                continue
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            if self._stopping_since is None:
                log.error("worker %d (pid %d) %s without being asked to: stopping the others", worker.index,
                          worker.pid, how)
                self._stop(signal.SIGTERM)
            else:
                log.error("worker %d (pid %d) %s while stopping", worker.index, worker.pid, how)
            self._fail(code if code > 0 else Exit.FAILED)
        if self._stopping_since is not None and time.monotonic() - self._stopping_since > STOP_TIMEOUT:
            for worker in self.workers:
                if not worker.done and worker.process.poll() is None:
                    log.error("worker %d (pid %d) still running %g s after the stop: killing it", worker.index,
                              worker.pid, STOP_TIMEOUT)
                    worker.process.kill()
                    self._fail(Exit.FAILED)

    def _stop(self, signum: int) -> None:
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _fail(self, status: int) -> None:
        if self.status == 0:
            self.status = int(status)
