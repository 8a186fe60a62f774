"""The core and the edge as separate processes on 127.0.0.1, and what they cost (CPU, peak RSS).

They run as `python -m wallet_cli core|edge`, configured by WALLET_* variables like a
deployment, so their CPU and memory are measured apart from the load generator's, and py-spy
can attach to them by pid. A core of several processes (`WALLET_CORE_WORKERS`, `wallet bench
--core-workers N`) is a supervisor and its workers: its CPU is the sum over all of them, its
peak RSS that of the largest one (the memory target is per process).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path
    peak_rss: int = 0  # the largest single process's
    peak_rss_total: int = 0  # the sum over its processes, at one moment
    _ps: psutil.Process | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ps(self) -> psutil.Process:
        if self._ps is None:
            self._ps = psutil.Process(self.pid)
        return self._ps

    def processes(self) -> list[psutil.Process]:
        """The process and every process it started (a core's workers), those still running."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its running children (a core's supervisor and workers)."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> tuple[int, int]:
        """(the largest RSS of a single process, the sum over them), in bytes."""
        sizes = []
        for process in self.processes():
            try:
                sizes.append(int(process.memory_info().rss))
            except psutil.Error:
                continue
        return max(sizes, default=0), sum(sizes)

    def busiest_pid(self) -> int:
        """The pid to profile: the first worker of a core of several processes, else the process itself."""
        children = self.processes()[1:]
        return children[0].pid if children else self.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"the {self.name} exited with status {self.process.returncode}:\n{tail}")


@dataclass
class Stack:
    core: Service
    edge: Service | None
    core_token: str
    edge_token: str
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, core RSS: its largest process)

    def services(self) -> list[Service]:
        return [s for s in (self.core, self.edge) if s is not None]


class RssSampler(threading.Thread):
    """Samples the services' RSS every `interval` seconds: peak memory is a maximum over time."""

    def __init__(self, stack: Stack, interval: float = 0.2) -> None:
        super().__init__(name="bench-rss", daemon=True)
        self.stack = stack
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop_event.wait(self.interval):
            for service in self.stack.services():
                rss, total = service.rss()
                service.peak_rss = max(service.peak_rss, rss)
                service.peak_rss_total = max(service.peak_rss_total, total)
                if service is self.stack.core:
                    self.stack.samples.append((round(time.monotonic() - started, 1), rss))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "wallet_cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log_path


def _wait_grpc(service: Service, token: str, timeout: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while True:
        service.check_alive()
        try:
            with grpc.insecure_channel(service.address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                # types-grpcio-health-checking declares the stub without its methods
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the core did not start within {timeout:g} s; see {service.log_path}")
        time.sleep(0.2)


def _wait_workers(service: Service, workers: int, timeout: float) -> None:
    """A core of several processes: wait until each of its `workers` listens on the gRPC port (the
    health check through the shared port reaches only one of them)."""
    port = int(service.address.rpartition(":")[2])
    deadline = time.monotonic() + timeout

    def listening(process: psutil.Process) -> bool:
        try:
            return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                       for c in process.net_connections(kind="tcp"))
        except psutil.Error:
            return False

    while True:
        service.check_alive()
        children = service.processes()[1:]
        if len(children) == workers and all(listening(p) for p in children):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the core's {workers} workers did not all listen within {timeout:g} s; "
                               f"see {service.log_path}")
        time.sleep(0.2)


def _wait_http(service: Service, timeout: float, path: str = "/readyz") -> None:
    """Wait until the edge answers 200 on `path` (`/readyz`: it reaches its core; `/healthz`: it serves)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        service.check_alive()
        try:
            if httpx.get(f"http://{service.address}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the edge did not answer {path} within {timeout:g} s; see {service.log_path}")
        time.sleep(0.2)


def _stop(service: Service) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=5)


@contextmanager
def running_stack(db_url: str, log_dir: Path, *, edge: bool, core_env: dict[str, str] | None = None,
                  edge_env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[Stack]:
    """Start the core (and the edge) on free ports of 127.0.0.1; stop them (SIGTERM, then SIGKILL) at the end.

    `core_env` WALLET_CORE_WORKERS=N starts a core of N processes; every one of them listens before this yields.
    `edge_env` adds to the edge's settings (WALLET_EDGE_CORE_CHANNELS, its connections to the core).
    """
    core_token, edge_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    base = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    grpc_addr = f"127.0.0.1:{free_port()}"
    env = base | {
        "WALLET_DATABASE_URL": db_url, "WALLET_GRPC_ADDR": grpc_addr, "WALLET_GRPC_TOKENS": f"{core_token}=*",
        "WALLET_LOG_LEVEL": "WARNING",
    } | (core_env or {})
    process, log_path = _spawn("core", ["core"], env, log_dir)
    core = Service("core", process, grpc_addr, log_path)
    edge_service: Service | None = None
    try:
        _wait_grpc(core, core_token, timeout)
        workers = int(env.get("WALLET_CORE_WORKERS", "1"))
        if workers > 1:
            _wait_workers(core, workers, timeout)
        if edge:
            http_addr = f"127.0.0.1:{free_port()}"
            edge_vars = base | {
                "WALLET_HTTP_ADDR": http_addr, "WALLET_CORE_ADDR": grpc_addr, "WALLET_CORE_TOKEN": core_token,
                "WALLET_EDGE_TOKENS": f"{edge_token}=*",  # the core token limits it
            } | (edge_env or {})
            process, log_path = _spawn("edge", ["edge"], edge_vars, log_dir)
            edge_service = Service("edge", process, http_addr, log_path)
            _wait_http(edge_service, timeout)
        yield Stack(core, edge_service, core_token, edge_token)
    finally:
        if edge_service is not None:
            _stop(edge_service)
        _stop(core)
