"""The core's settings: `WALLET_*` environment variables over an optional TOML file over defaults.

Every setting is described in docs/configuration.md. Values are checked here, at start-up,
so that a typo fails with the setting's name instead of at the first call.
"""

from __future__ import annotations

import json
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, InstanceOf, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL

from wallet_core.currencies import parse_overrides
from wallet_core.storage.engine import normalize_url

# The database URL is parsed here, once, into SQLAlchemy's URL with its driver (normalize_url):
# everything after (the engine, the migrations) receives this URL or the engine, never the text.
# NoDecode: WALLET_DATABASE_URL is the URL itself, not JSON.
DatabaseURL = Annotated[InstanceOf[URL], NoDecode, BeforeValidator(normalize_url)]

# the TOML file's values while load_settings builds the Settings: the weakest source but the defaults
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("wallet_settings_file", default=None)


class Settings(BaseSettings):
    """How the core stores money, where it listens, and whom it believes."""

    model_config = SettingsConfigDict(env_prefix="WALLET_", extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: DatabaseURL = Field(default="sqlite:///wallet.db", validate_default=True)
    data_dir: Path = Path(".wallet")
    grpc_addr: str = "127.0.0.1:50051"
    grpc_tokens: str = Field(default="", repr=False)
    grpc_tls_cert: Path | None = None
    grpc_tls_key: Path | None = None
    grpc_workers: int = Field(default=128, gt=0, le=1024)
    # processes of `wallet core` serving grpc_addr together (docs/configuration.md, "Several core processes")
    core_workers: int = Field(default=1, gt=0, le=64)
    # SO_REUSEPORT on the gRPC listener: processes of one user may listen on one port together, the
    # kernel spreads the connections; the workers of `core --workers N` set it, a single core leaves it off
    grpc_reuse_port: bool = False
    grpc_max_message_bytes: int = Field(default=1_048_576, gt=0)
    db_pool_size: int = Field(default=20, gt=0, le=500)
    # NoDecode: WALLET_CURRENCIES is `FUN=2,BTC=8` (parsed by _currencies), not JSON
    currencies: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    group_commit: bool = True
    group_commit_max_batch: int = Field(default=128, gt=0, le=10_000)
    group_commit_max_wait: float = Field(default=0.0, ge=0, le=1.0)
    log_level: str = "INFO"
    log_format: Literal["plain", "json"] = "plain"
    metrics_addr: str | None = None
    insecure_no_auth: bool = False
    # what a settlement correction does when the player already spent the payout: `refuse` or
    # `debt`, for every client, or per client: `fanteam=debt,*=refuse` (see docs/decisions.md)
    clawback: str = "refuse"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit arguments (the command line) > environment > TOML file (load_settings) > defaults
        return init_settings, env_settings, InitSettingsSource(settings_cls, _FILE_VALUES.get() or {})

    @field_validator("currencies", mode="before")
    @classmethod
    def _currencies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("{") else parse_overrides(value)
        return value

    @field_validator("grpc_addr", "metrics_addr")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("grpc_tokens")
    @classmethod
    def _tokens(cls, value: str) -> str:
        from wallet_core.grpc_api.auth import parse_token_spec

        parse_token_spec(value)  # raises ValueError naming the bad entry, never the token
        return value

    @field_validator("metrics_addr", mode="before")
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return None if value == "" else value  # WALLET_METRICS_ADDR= (empty): no metrics port

    @field_validator("log_format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("clawback")
    @classmethod
    def _clawback(cls, value: str) -> str:
        parse_clawback(value)  # raises ValueError naming the bad entry
        return value

    def clawback_policies(self) -> dict[str, Any]:
        """client -> ClawbackPolicy; the key "*" is every other client."""
        return parse_clawback(self.clawback)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("WALLET_GRPC_TLS_CERT and WALLET_GRPC_TLS_KEY go together")
        return self


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML settings file: keys are the settings' names without the WALLET_ prefix, lower case."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    section = data.get("wallet", data)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: expected a table of settings")
    unknown = set(section) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
    return dict(section)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from (weakest first) defaults, the TOML file, WALLET_* variables, then `overrides`.

    `overrides` that are None are ignored, so command-line options can be passed as they are.
    """
    file_values = _FILE_VALUES.set(read_toml(config_file) if config_file is not None else None)
    try:  # built once: every source is merged before a single validation
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _FILE_VALUES.reset(file_values)


def parse_clawback(text: str) -> dict[str, Any]:
    """`refuse`, `debt`, or `client=policy,...` with `*` for every other client (default `refuse`)."""
    from wallet_core.domain import ClawbackPolicy

    policies: dict[str, Any] = {"*": ClawbackPolicy.REFUSE}
    choices = ", ".join(p.value for p in ClawbackPolicy)
    for entry in filter(None, (e.strip() for e in text.split(","))):
        client, sep, name = entry.rpartition("=")
        client = client.strip() if sep else "*"
        try:
            policies[client or "*"] = ClawbackPolicy(name.strip().lower())
        except ValueError:
            raise ValueError(f"clawback entry {entry!r}: the policy must be one of {choices}") from None
    return policies
