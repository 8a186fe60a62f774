"""The services as separate processes on real ports, for the reliability campaign (tests/reliability).

`CoreProcess` runs `wallet core` and can be killed with SIGKILL and started again on the same
port; `EdgeProcess` runs `wallet edge`. Both log to a file the tests can read (tokens must never
appear there). Readiness is polled (gRPC health, GET /healthz) with a bounded wait.
Also: free ports, a throwaway TLS certificate authority, and waiting for PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, text

from tests.support.servers import CURRENCIES, TOKEN_SPEC
from wallet_core.storage.engine import normalize_url

WALLET = str(Path(sys.executable).with_name("wallet"))
START_TIMEOUT = 60.0
EDGE_TOKEN = "edge-secret-token-for-betflex"
# it may act for every client: the core token given to each edge is what limits these edges
EDGE_TOKENS = f"{EDGE_TOKEN}=*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessDied(RuntimeError):
    """The process being waited for exited: no point in waiting longer."""


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check` until it holds; fail with `what` after `timeout` seconds (an upper bound, not a timing)."""
    end = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ProcessDied:
            raise
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(interval)


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def currencies_setting() -> str:
    return ",".join(f"{code}={scale}" for code, scale in CURRENCIES.items())


class _Process:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, calls in flight are cut off."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class CoreProcess(_Process):
    """`wallet core --migrate` on 127.0.0.1:<port> over `db_url`."""

    def __init__(self, db_url: str, log_path: Path, *, port: int | None = None, tokens: str = TOKEN_SPEC,
                 tls: tuple[Path, Path] | None = None, root_certificates: bytes | None = None,
                 **env: str) -> None:
        self.port = port or free_port()
        self.root_certificates = root_certificates
        extra = {
            "WALLET_DATABASE_URL": db_url, "WALLET_GRPC_ADDR": f"127.0.0.1:{self.port}",
            "WALLET_GRPC_TOKENS": tokens, "WALLET_CURRENCIES": currencies_setting(), **env,
        }
        if tls is not None:
            extra["WALLET_GRPC_TLS_CERT"], extra["WALLET_GRPC_TLS_KEY"] = str(tls[0]), str(tls[1])
        super().__init__([WALLET, "core", "--migrate"], _clean_env(extra), log_path)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._spawn()
        wait_until(self.serving, timeout, f"the core did not serve on {self.target}")

    def serving(self) -> bool:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise ProcessDied(f"the core exited with {code}:\n{self.log()[-3000:]}")
        if self.root_certificates is not None:
            channel = grpc.secure_channel(self.target, grpc.ssl_channel_credentials(self.root_certificates))
        else:
            channel = grpc.insecure_channel(self.target)
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            # types-grpcio-health-checking declares the stub without its methods
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)  # type: ignore[attr-defined]
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def restart(self) -> None:
        self.kill()
        self.start()


class EdgeProcess(_Process):
    """`wallet edge` on 127.0.0.1:<port>, calling the core at `core_target` with `core_token`."""

    def __init__(self, core_target: str, core_token: str, log_path: Path, *, edge_tokens: str = EDGE_TOKENS,
                 **env: str) -> None:
        self.port = free_port()
        extra = {
            "WALLET_HTTP_ADDR": f"127.0.0.1:{self.port}", "WALLET_CORE_ADDR": core_target,
            "WALLET_CORE_TOKEN": core_token, "WALLET_EDGE_TOKENS": edge_tokens, **env,
        }
        super().__init__([WALLET, "edge"], _clean_env(extra), log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._spawn()

        def up() -> bool:
            if not self.alive():
                raise ProcessDied(f"the edge exited:\n{self.log()[-3000:]}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        wait_until(up, timeout, f"the edge did not answer on {self.url}")


@contextmanager
def running_edge(core_target: str, core_token: str, log_path: Path, **env: str) -> Iterator[EdgeProcess]:
    edge = EdgeProcess(core_target, core_token, log_path, **env)
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


@contextmanager
def running_core_process(db_url: str, log_path: Path, **kwargs: object) -> Iterator[CoreProcess]:
    core = CoreProcess(db_url, log_path, **kwargs)  # type: ignore[arg-type]
    core.start()
    try:
        yield core
    finally:
        core.stop()


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the authority clients trust
    cert: Path  # the server's certificate, for localhost and 127.0.0.1
    key: Path


def make_certificates(directory: Path, name: str = "test") -> Certificates:
    """A throwaway CA and a server certificate it signed (openssl; EC keys, valid two days)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    cert, key, csr = directory / f"{name}-server.pem", directory / f"{name}-server.key", directory / f"{name}.csr"
    ext = directory / f"{name}-ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", f"/CN={name} wallet CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return Certificates(ca, cert, key)


# ---------------------------------------------------------------- PostgreSQL


def postgres_accepts(url: str) -> bool:
    engine = create_engine(normalize_url(url), pool_size=1, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1
    except Exception:  # noqa: BLE001 - down
        return False
    finally:
        engine.dispose()


def wait_for_postgres(url: str, timeout: float = 60.0) -> None:
    wait_until(lambda: postgres_accepts(url), timeout, "PostgreSQL did not accept connections", interval=0.2)
