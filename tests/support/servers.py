"""Real servers on real sockets for the integration and end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from tests.support.db import assert_reconciled
from wallet_core.config import load_settings
from wallet_core.currencies import CurrencyRegistry
from wallet_core.grpc_api.server import create_server, serve_metrics
from wallet_core.service import Ledger
from wallet_core.storage.engine import make_engine

TOKENS = {"fanteam": "tok-fanteam", "other": "tok-other", "admin": "tok-admin", "ops": "tok-ops"}
TOKEN_SPEC = "tok-fanteam=fanteam;tok-other=other;tok-admin=*;ops-desk:tok-ops=*"  # tok-ops: labelled "ops-desk"
CURRENCIES = {"FUN": 2, "BTC": 8}


@dataclass
class Core:
    port: int
    ledger: Ledger
    engine: Engine
    metrics_port: int | None = None  # with `metrics_addr="127.0.0.1:0"`

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def running_core(db_url: str, *, group_commit: bool = True, currencies: dict[str, int] | None = None,
                 tracer_provider: Any = None, **settings: object) -> Iterator[Core]:
    """The gRPC core on 127.0.0.1 and a free port, on `db_url`; reconciled when it stops.

    `currencies` replaces the test overrides (FUN=2, BTC=8), e.g. {"ETH": 18}. With a
    `tracer_provider` (OpenTelemetry), its RPCs and its SQL statements are traced.
    """
    currencies = CURRENCIES if currencies is None else currencies
    config = load_settings(
        None, database_url=db_url, grpc_addr="127.0.0.1:0", grpc_tokens=TOKEN_SPEC, currencies=currencies,
        **settings,
    )
    engine = make_engine(db_url, pool_size=20)
    if tracer_provider is not None:
        from wallet_core.tracing import instrument_engine

        instrument_engine(engine, tracer_provider)
    ledger = Ledger(engine, CurrencyRegistry(currencies), group_commit=group_commit,
                    clawback=config.clawback_policies())
    server, port = create_server(config, ledger, tracer_provider=tracer_provider)
    server.start()
    metrics = serve_metrics(config, server)
    try:
        yield Core(port, ledger, engine, metrics.server_address[1] if metrics else None)
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
        server.stop(grace=None)
        ledger.close()
        try:
            assert_reconciled(engine)
        finally:
            engine.dispose()
