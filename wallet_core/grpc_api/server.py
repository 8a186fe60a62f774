"""The gRPC server: the Wallet service, the standard health service and server reflection.

The server is grpc.aio's, on an event loop of its own (`CoreServer`), so that a Debit waits
for its group-commit batch without holding a thread. `create_server` builds it unstarted and
returns the bound port (`:0` picks a free one);
`serve_forever` runs it until SIGINT/SIGTERM, then drains calls in flight for a grace period.
The health service follows the database (`DatabaseWatcher`): NOT_SERVING while the ledger
cannot reach it, SERVING again when it can.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from concurrent import futures
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from clients.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from wallet_core.config import Settings
from wallet_core.grpc_api.auth import Authenticator, parse_token_spec
from wallet_core.grpc_api.observe import CoreMetrics, ObservingInterceptor
from wallet_core.grpc_api.service import WalletService
from wallet_core.service import Ledger

log = logging.getLogger("wallet_core.grpc")
T = TypeVar("T")

SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["Wallet"].full_name
GRACE_SECONDS = 10.0
PING_INTERVAL = 1.0  # seconds between two pings of the database
PING_TIMEOUT = 2.0  # a ping without an answer by then counts as an outage


class HealthTarget(Protocol):
    def set(self, name: str, status: Any) -> None: ...


class DatabaseWatcher:
    """Pings the ledger's database every PING_INTERVAL seconds and sets the health status to match.

    A ping runs in a thread of its own and is judged after PING_TIMEOUT seconds, so a database
    that hangs (a network that drops packets) is reported as promptly as one that refuses; a
    hung ping is not repeated until it returns. The status changes only on a change of answer,
    and each change is logged once.
    """

    def __init__(self, ledger: Ledger, health_servicer: HealthTarget, *,
                 interval: float = PING_INTERVAL, timeout: float = PING_TIMEOUT) -> None:
        self._ledger = ledger
        self._health = health_servicer
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._pinger = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-ping")
        self._thread = threading.Thread(target=self._run, name="db-watcher", daemon=True)
        self.serving: bool | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop pinging (idempotent); a ping in flight is left to finish on its own."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._pinger.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        pending: futures.Future[None] | None = None
        while not self._stop.is_set():
            if pending is None or pending.done():
                pending = self._pinger.submit(self._ledger.ping)
            try:
                pending.result(timeout=self._timeout)
                self._set(True, "")
            except futures.TimeoutError:
                self._set(False, f"no answer within {self._timeout:g} s")
            except Exception as exc:  # noqa: BLE001 - any failure to reach the database is an outage, told to health
                self._set(False, repr(exc.__cause__ or exc))
            self._stop.wait(self._interval)

    def _set(self, serving: bool, why: str) -> None:
        if serving == self.serving or self._stop.is_set():
            return
        self.serving = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)
        if serving:
            log.info("the ledger database answers: health SERVING")
        else:
            log.error("the ledger database cannot be reached (%s): health NOT_SERVING", why)


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
        return None
    return grpc.ssl_server_credentials([(settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())])


class _LoopHealth:
    """The asyncio health servicer, set from any thread (the database watcher's)."""

    def __init__(self, servicer: health.aio.HealthServicer, loop: asyncio.AbstractEventLoop) -> None:
        self.servicer = servicer
        self._loop = loop

    def set(self, name: str, status: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.servicer.set(name, status), self._loop).result(5)

    def enter_graceful_shutdown(self) -> None:
        asyncio.run_coroutine_threadsafe(self.servicer.enter_graceful_shutdown(), self._loop).result(5)


class CoreServer:
    """The core's grpc.aio server, on an event loop in a thread of its own, driven from plain code.

    One event loop serves every RPC: Debit and Fence await the group committer there (no thread
    per call); the Ledger's blocking methods run on the loop's default executor, a pool of
    `settings.grpc_workers` threads. `start()`, `stop(grace)` (returns an Event set once stopped,
    as grpc.Server.stop does) and `wait_for_termination()` may be called from any thread.
    """

    def __init__(self, settings: Settings, ledger: Ledger, *, tracer_provider: Any = None) -> None:
        self._grants = parse_token_spec(settings.grpc_tokens)
        if not self._grants and not settings.insecure_no_auth:
            log.warning("no tokens configured (WALLET_GRPC_TOKENS): every Wallet call will be refused")
        if settings.insecure_no_auth:
            log.warning("--insecure-no-auth: the core accepts calls WITHOUT authentication; local trials only")
        self.metrics = CoreMetrics()
        ledger.observe(self.metrics)
        self.metrics.watch_queue(ledger.queue_depth)
        self._settings = settings
        self._ledger = ledger
        self._tracer_provider = tracer_provider
        self._stopped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(
            futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="grpc"))
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        try:
            self._server, self.port, servicer = self._run(self._build())
        except BaseException:
            self._close_loop()
            raise
        self.health = _LoopHealth(servicer, self._loop)
        self.watcher = DatabaseWatcher(ledger, self.health)
        self.watcher.start()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _build(self) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
        settings = self._settings
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", 16 * settings.grpc_max_message_bytes),
            ("grpc.so_reuseport", 1 if settings.grpc_reuse_port else 0),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        interceptors: list[grpc.aio.ServerInterceptor] = [ObservingInterceptor(self.metrics)]
        if self._tracer_provider is not None:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor

            interceptors.insert(0, aio_server_interceptor(tracer_provider=self._tracer_provider))
        server = grpc.aio.server(
            options=options, maximum_concurrent_rpcs=settings.grpc_workers * 16, interceptors=interceptors,
        )
        auth = Authenticator(self._grants, insecure_no_auth=settings.insecure_no_auth)
        wallet_pb2_grpc.add_WalletServicer_to_server(WalletService(self._ledger, auth), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        credentials = _credentials(settings)
        if credentials is None:
            port = server.add_insecure_port(settings.grpc_addr)
        else:
            port = server.add_secure_port(settings.grpc_addr, credentials)
        if port == 0:
            raise RuntimeError(f"cannot listen on {settings.grpc_addr}")
        return server, port, health_servicer

    def start(self) -> None:
        self._run(self._server.start())

    def stop(self, grace: float | None) -> threading.Event:
        """Stop taking calls; with a `grace` (seconds) let the calls in flight finish, else cancel them.

        Returns an Event set once the server has stopped and its loop is closed (idempotent)."""
        if not self._stopped.is_set() and self._loop.is_running():
            self.watcher.stop()
            try:
                self._run(self._server.stop(grace))
            finally:
                self._close_loop()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def _close_loop(self) -> None:
        async def shutdown_executor() -> None:
            await self._loop.shutdown_default_executor()

        try:
            self._run(shutdown_executor(), timeout=GRACE_SECONDS)
        except Exception:  # noqa: BLE001 - a worker thread that does not finish must not hold up the stop
            log.warning("worker threads still busy at stop; leaving them")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=GRACE_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()
        self._stopped.set()


def create_server(settings: Settings, ledger: Ledger, *, tracer_provider: Any = None) -> tuple[CoreServer, int]:
    """The server bound to `settings.grpc_addr`, not started; (server, the port it bound).

    Every call is counted, timed and logged (`server.metrics`, wallet_core.grpc_api.observe);
    with a `tracer_provider` (wallet_core.tracing) every call is also a span.
    """
    server = CoreServer(settings, ledger, tracer_provider=tracer_provider)
    return server, server.port


def serve_metrics(settings: Settings, server: CoreServer) -> Any | None:
    """Serve the core's /metrics on `settings.metrics_addr` from a thread of this process.

    Returns the HTTP server (`.server_address`, `.shutdown()`), or None when no address is set.
    """
    if settings.metrics_addr is None:
        return None
    host, _, port = settings.metrics_addr.rpartition(":")
    httpd, _ = start_http_server(int(port), addr=host.strip("[]"), registry=server.metrics.registry)
    log.info("wallet core metrics on http://%s:%d/metrics", host, httpd.server_address[1])
    return httpd


def serve_forever(settings: Settings, ledger: Ledger, *, tracer_provider: Any = None) -> None:
    server, port = create_server(settings, ledger, tracer_provider=tracer_provider)
    server.start()
    host = settings.grpc_addr.rpartition(":")[0]
    log.info("wallet core listening on %s:%d (%s)", host, port, "TLS" if settings.grpc_tls_cert else "plaintext")
    serve_metrics(settings, server)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: draining calls in flight", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    server.watcher.stop()
    server.health.enter_graceful_shutdown()
    server.stop(grace=GRACE_SECONDS).wait()
    ledger.close()
    ledger.engine.dispose()
    log.info("wallet core stopped")
