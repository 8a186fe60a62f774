"""The edge's settings: WALLET_* variables, checked at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_http.config import EdgeSettings


def test_defaults() -> None:
    settings = EdgeSettings()
    assert settings.http_addr == "127.0.0.1:8080" and settings.core_addr == "127.0.0.1:50051"
    assert settings.core_token == "" and settings.core_tls is False and settings.core_tls_ca is None
    assert settings.edge_tokens == settings.edge_allow == settings.edge_trusted_proxies == ""
    assert settings.edge_max_body_bytes == 1_048_576
    deadlines = (settings.edge_bets_deadline, settings.edge_core_attempt_timeout, settings.edge_fence_deadline)
    assert deadlines == (3.0, 1.0, 3.0)
    assert settings.insecure_no_auth is False
    assert settings.listen() == ("127.0.0.1", 8080)


def test_settings_come_from_wallet_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {
        "WALLET_HTTP_ADDR": "0.0.0.0:9000",
        "WALLET_CORE_ADDR": "core:50051",
        "WALLET_CORE_TOKEN": "core-token",
        "WALLET_CORE_TLS": "true",
        "WALLET_CORE_TLS_CA": str(tmp_path / "ca.pem"),
        "WALLET_EDGE_TOKENS": "a=fanteam;b=fanteam,casino",
        "WALLET_EDGE_ALLOW": "203.0.113.0/24",
        "WALLET_EDGE_TRUSTED_PROXIES": "10.0.0.0/8",
        "WALLET_EDGE_MAX_BODY_BYTES": "2048",
        "WALLET_EDGE_BETS_DEADLINE": "5",
        "WALLET_EDGE_CORE_ATTEMPT_TIMEOUT": "0.5",
        "WALLET_EDGE_CANCEL_DEADLINE": "4",
        "WALLET_INSECURE_NO_AUTH": "1",
        "WALLET_DATABASE_URL": "sqlite:///elsewhere.db",  # the core's: ignored here
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = EdgeSettings()
    assert settings.listen() == ("0.0.0.0", 9000)
    assert (settings.core_addr, settings.core_token, settings.core_tls) == ("core:50051", "core-token", True)
    assert settings.core_tls_ca == tmp_path / "ca.pem"
    assert (settings.edge_tokens, settings.edge_allow, settings.edge_trusted_proxies) == (
        "a=fanteam;b=fanteam,casino", "203.0.113.0/24", "10.0.0.0/8")
    assert settings.edge_max_body_bytes == 2048
    deadlines = (settings.edge_bets_deadline, settings.edge_core_attempt_timeout, settings.edge_fence_deadline)
    assert deadlines == (5.0, 0.5, 4.0)
    assert settings.insecure_no_auth is True


def test_tokens_are_not_in_the_repr() -> None:
    text = repr(EdgeSettings(edge_tokens="edge-secret=fanteam", core_token="core-secret"))
    assert "edge-secret" not in text and "core-secret" not in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("http_addr", "8080"), ("http_addr", "host:"), ("http_addr", "host:99999"), ("core_addr", "core"),
        ("edge_allow", "10.0.0.1/8"), ("edge_allow", "everyone"), ("edge_trusted_proxies", "10.0.0.0/40"),
        ("edge_tokens", "sha256:nothex=fanteam"), ("edge_tokens", "plain-token"), ("edge_max_body_bytes", 0),
        ("edge_bets_deadline", 0),
        ("edge_core_attempt_timeout", -1), ("edge_fence_deadline", 0),
    ],
)
def test_a_bad_value_fails_at_start_up_naming_the_setting(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        EdgeSettings(**{field: value})
    assert field in str(caught.value)


def test_ipv6_listen_address() -> None:
    assert EdgeSettings(http_addr="[::1]:8081").listen() == ("::1", 8081)


def test_the_cli_can_fill_in_a_token_later() -> None:
    """`wallet serve` builds settings without tokens and copies its generated one in."""
    settings = EdgeSettings().model_copy(update={"edge_tokens": "generated"})
    assert settings.edge_tokens == "generated"


def test_an_edge_without_a_token_or_the_insecure_flag_is_not_built() -> None:
    from edge_http.app import EdgeConfigError, create_app

    with pytest.raises(EdgeConfigError, match="WALLET_EDGE_TOKENS"):
        create_app(EdgeSettings(edge_tokens="", insecure_no_auth=False))


def test_a_bad_token_setting_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        EdgeSettings(edge_tokens="good-token=fanteam;;sha256:nothex=fanteam")
    assert "good-token" not in str(caught.value) and "nothex" not in str(caught.value)


def test_the_old_list_of_bare_tokens_is_refused_at_start_up_with_the_new_format() -> None:
    """A token without clients would have to mean every client: refused instead, naming what to write."""
    with pytest.raises(ValidationError) as caught:
        EdgeSettings(edge_tokens="first-secret,second-secret")
    message = str(caught.value)
    assert "token=fanteam" in message and "first-secret" not in message and "second-secret" not in message
