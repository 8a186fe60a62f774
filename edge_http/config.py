"""The edge's settings, from `WALLET_*` environment variables (every one is described in docs/edge.md).

Lists (tokens, networks) stay plain comma-separated strings, as they arrive from the
environment; they are checked here, so that a typo fails at start-up with the variable's name,
and parsed where they are used (`edge_http.auth`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clients.aio import MAX_CHANNELS
from edge_http.auth import parse_networks, parse_tokens


class EdgeSettings(BaseSettings):
    """How the betflex edge listens, whom it believes, and how it reaches the wallet core."""

    model_config = SettingsConfigDict(env_prefix="WALLET_", extra="ignore", frozen=True, hide_input_in_errors=True)

    http_addr: str = "127.0.0.1:8080"
    core_addr: str = "127.0.0.1:50051"
    core_token: str = Field(default="", repr=False)
    core_tls: bool = False
    core_tls_ca: Path | None = None
    edge_tokens: str = Field(default="", repr=False)
    edge_allow: str = ""
    edge_trusted_proxies: str = ""
    edge_max_body_bytes: int = Field(default=1_048_576, gt=0)
    edge_header_timeout: float = Field(default=10.0, gt=0)
    edge_body_timeout: float = Field(default=10.0, gt=0)
    edge_bets_deadline: float = Field(default=3.0, gt=0)
    edge_core_attempt_timeout: float = Field(default=1.0, gt=0)
    # connections to the core, calls spread over them in turn: a core of N processes needs >= N
    edge_core_channels: int = Field(default=1, ge=1, le=MAX_CHANNELS)
    # how long the edge tries to fence the bets of a Debit whose outcome it does not know
    edge_fence_deadline: float = Field(
        default=3.0, gt=0, validation_alias=AliasChoices("wallet_edge_fence_deadline", "wallet_edge_cancel_deadline",
                                                         "edge_fence_deadline", "edge_cancel_deadline"),
    )
    # no player waits on a settlement: a callback as large as the body cap allows needs a few seconds
    edge_winners_deadline: float = Field(default=10.0, gt=0)
    # SettleBatch calls (of up to 250 payouts each) in flight at once for one /winners callback
    edge_settle_concurrency: int = Field(default=4, gt=0, le=1024)
    # clients whose /winners may correct a settled bet's payout (a resettle) instead of a settlement_conflict
    edge_auto_resettle: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["plain", "json"] = "plain"
    insecure_no_auth: bool = False

    @field_validator("http_addr", "core_addr")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("edge_tokens")
    @classmethod
    def _tokens(cls, value: str) -> str:
        parse_tokens(value)  # raises ValueError naming the bad entry (never the token itself)
        return value

    @field_validator("edge_allow", "edge_trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    def auto_resettle_clients(self) -> frozenset[str]:
        """`edge_auto_resettle` as a set of clients ("*": every client)."""
        return frozenset(c.strip() for c in self.edge_auto_resettle.split(",") if c.strip())

    def listen(self) -> tuple[str, int]:
        """`http_addr` as (host, port); IPv6 hosts may be written in brackets."""
        host, _, port = self.http_addr.rpartition(":")
        return host.strip("[]"), int(port)
