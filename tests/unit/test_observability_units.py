"""The pure parts of observability: settings, the JSON log format, call metadata, the committer's hooks."""

from __future__ import annotations

import contextvars
import io
import json
import logging

import pytest
from pydantic import ValidationError

from clients import call_metadata
from clients._channel import CALL_METADATA
from edge_http.config import EdgeSettings
from wallet_core.committer import Committer
from wallet_core.config import Settings
from wallet_core.logs import WalletJsonFormatter, configure_logging


def test_the_core_reads_log_format_and_metrics_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_LOG_FORMAT", "JSON")
    monkeypatch.setenv("WALLET_METRICS_ADDR", "0.0.0.0:9464")
    settings = Settings()
    assert (settings.log_format, settings.metrics_addr) == ("json", "0.0.0.0:9464")
    assert Settings(metrics_addr="").metrics_addr is None
    with pytest.raises(ValidationError, match="metrics_addr"):
        Settings(metrics_addr="9464")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]  # refused at run time: the point of the test


def test_the_edge_reads_log_level_and_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALLET_LOG_LEVEL", "debug")
    monkeypatch.setenv("WALLET_LOG_FORMAT", "json")
    settings = EdgeSettings()
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    with pytest.raises(ValidationError, match="log_level"):
        EdgeSettings(log_level="LOUD")  # type: ignore[arg-type]  # refused at run time: the point of the test


def test_json_format_puts_an_access_line_at_the_top_level() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(WalletJsonFormatter())
    logger = logging.getLogger("test.observability.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        line = {"event": "rpc", "method": "wallet.v1.Wallet/Debit", "code": "OK"}
        logger.warning(json.dumps(line), extra={"access": line})
        logger.warning("plain %s", "text")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(raw) for raw in stream.getvalue().splitlines())
    assert first["method"] == "wallet.v1.Wallet/Debit" and first["level"] == "WARNING" and "message" not in first
    assert first["logger"] == "test.observability.json" and first["time"]
    assert second["message"] == "plain text" and "access" not in second


def test_configure_logging_replaces_the_handlers_and_sets_the_level() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        configure_logging("warning", "json")
        assert root.level == logging.WARNING and len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, WalletJsonFormatter)
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_call_metadata_is_scoped_and_never_carries_the_token() -> None:
    assert CALL_METADATA.get() == ()
    with call_metadata(x_request_id="abc"):
        assert CALL_METADATA.get() == (("x-request-id", "abc"),)
    assert CALL_METADATA.get() == ()
    with pytest.raises(ValueError, match="token"):
        with call_metadata(authorization="Bearer x"):
            pass


def test_the_committer_reports_batches_and_runs_a_lone_call_in_its_callers_context() -> None:
    seen: list[tuple[int, float]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="committer")
    committer: Committer[int, str] = Committer(lambda calls: [marker.get() for _ in calls],
                                               on_batch=lambda n, s: seen.append((n, s)))
    try:
        marker.set("caller")
        assert committer.submit(1) == "caller"
        assert committer.depth() == 0
    finally:
        committer.close()
    assert [n for n, _ in seen] == [1] and seen[0][1] >= 0
