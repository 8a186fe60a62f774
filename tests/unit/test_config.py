"""The core's settings: defaults < TOML file < WALLET_* environment < command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from wallet_core.config import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WALLET_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert (str(settings.database_url), settings.grpc_addr, settings.grpc_tokens) == (
        "sqlite:///wallet.db", "127.0.0.1:50051", "")
    assert settings.group_commit and not settings.insecure_no_auth


def test_file_then_environment_then_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "wallet.toml"
    config.write_text('database_url = "sqlite:///from-file.db"\ngrpc_addr = "127.0.0.1:7000"\nlog_level = "debug"\n'
                      'currencies = {FUN = 2}\n')
    assert str(load_settings(config).database_url) == "sqlite:///from-file.db"
    monkeypatch.setenv("WALLET_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("WALLET_CURRENCIES", "FUN=3,BTC=8")
    settings = load_settings(config, grpc_addr="127.0.0.1:9000", database_url=None)
    assert str(settings.database_url) == "sqlite:///from-env.db"  # the environment beats the file
    assert settings.grpc_addr == "127.0.0.1:9000"  # the command line beats both; None means "not given"
    assert settings.log_level == "DEBUG" and settings.currencies == {"FUN": 3, "BTC": 8}


def test_a_file_section_named_wallet_is_read_and_unknown_keys_refused(tmp_path: Path) -> None:
    config = tmp_path / "wallet.toml"
    config.write_text('[wallet]\ngrpc_workers = 8\n')
    assert load_settings(config).grpc_workers == 8
    config.write_text('[wallet]\ngrpc_wrokers = 8\n')
    with pytest.raises(ValueError, match="grpc_wrokers"):
        load_settings(config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grpc_addr": "50051"}, "HOST:PORT"),
        ({"grpc_tokens": "secret-token"}, "token entry 1"),
        ({"grpc_tokens": "a=x;=y"}, "token entry 2"),
        ({"log_level": "chatty"}, "log level"),
        ({"currencies": "FUN=two"}, "FUN"),
        ({"grpc_tls_cert": "cert.pem"}, "go together"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_setting(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=message) as caught:
        load_settings(**overrides)
    assert "secret-token" not in str(caught.value)


def test_tokens_are_never_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(Settings(grpc_tokens="s3cret=*"))


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg2://u@h/db",
                                 "postgresql+psycopg://u@h/db"])
def test_every_postgresql_scheme_is_read_as_psycopg_3(url: str) -> None:
    from wallet_core.storage.engine import normalize_url

    # parsed once, in the settings: what the engine and the migrations receive
    assert load_settings(database_url=url).database_url == normalize_url(url)
    assert load_settings(database_url=url).database_url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_other_databases_are_refused_with_what_to_use(url: str) -> None:
    with pytest.raises(ValidationError, match="postgresql://"):
        load_settings(database_url=url)


def test_settings_are_built_once_so_an_option_replaces_a_bad_variable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the file, the environment and the options are merged first, then validated once: a value
    # that an option replaces is never looked at (it used to be, in a first build from the environment)
    monkeypatch.setenv("WALLET_GRPC_ADDR", "no-port")
    monkeypatch.setenv("WALLET_LOG_LEVEL", "debug")
    config = tmp_path / "wallet.toml"
    config.write_text('grpc_addr = "127.0.0.1:7000"\nlog_level = "error"\nclawback = "debug"\n')
    settings = load_settings(config, grpc_addr="127.0.0.1:7001", clawback="refuse")
    assert (settings.grpc_addr, settings.log_level, settings.clawback) == ("127.0.0.1:7001", "DEBUG", "refuse")
