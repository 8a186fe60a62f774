"""The edge on a real port calling the core on a real port: the end-to-end test stack.

`running_edge(core_target, ...)` serves `edge_http.app.create_app` with uvicorn in a thread
of the test process, on 127.0.0.1 and a free port; the core comes from `running_core`.
`spawn` runs `wallet ...` as a separate process; `free_port` and `wait_until` come from
`tests.support.processes`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from edge_http.app import create_app
from edge_http.config import EdgeSettings
from tests.support.processes import free_port as free_port  # re-exported: the e2e tests import it from here
from tests.support.processes import wait_until as wait_until  # re-exported too
from tests.support.servers import TOKENS

EDGE_TOKEN = "tok-betflex-edge"
# the edge token of the test edges may act for every client: their core token is what limits them
# (TOKENS["fanteam"]); the edge's own per-client check is tested in tests/e2e/test_tenants.py
EDGE_TOKENS = f"{EDGE_TOKEN}=*"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Edge:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = EDGE_TOKEN, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


@contextmanager
def running_edge(
    core_target: str, *, core_token: str = TOKENS["fanteam"], tracer_provider: Any = None, **settings: Any
) -> Iterator[Edge]:
    """The betflex edge on 127.0.0.1:<free port>, calling the core at `core_target` (traced with a
    `tracer_provider`)."""
    config = EdgeSettings(**{
        "http_addr": "127.0.0.1:0", "core_addr": core_target, "core_token": core_token, "edge_tokens": EDGE_TOKENS,
        **settings,
    })
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app: Any = create_app(config)
    if tracer_provider is not None:
        from edge_http.tracing import instrument

        app = instrument(app, tracer_provider)
    server = uvicorn.Server(uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, proxy_headers=False,
        timeout_graceful_shutdown=5,
    ))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="edge", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "the edge did not start")
    try:
        yield Edge(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def wallet_command() -> list[str]:
    """The installed `wallet` command of this interpreter's environment."""
    return [sys.executable, "-m", "wallet_cli"]


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A `wallet ...` process with `env` on top of a clean WALLET_-free environment, output to `log`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    handle = log.open("wb")
    return subprocess.Popen(
        [*wallet_command(), *args], env={**base, **env}, stdout=handle, stderr=subprocess.STDOUT, cwd=log.parent,
    )
