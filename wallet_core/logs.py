"""Logging of every `wallet` command: a level (WALLET_LOG_LEVEL) and a format (WALLET_LOG_FORMAT).

- `plain`: `time LEVEL logger: message`, one line per record. The access lines of the core
  (`wallet_core.access`) and the callback lines of the edge (`edge_http.callbacks`) are
  already JSON objects in their message, so they stay machine-readable.
- `json`: one JSON object per record (python-json-logger): `time`, `level`, `logger`,
  `message`, and the exception if any. An access or callback line is written as its own
  fields at the top level instead of a message, so a log shipper indexes them directly.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EVENT_ATTRIBUTES = ("access", "callback")  # records carrying their line as a dict (extra=...)


class WalletJsonFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        for attribute in EVENT_ATTRIBUTES:
            event = log_data.pop(attribute, None)
            if isinstance(event, dict):
                log_data.pop("message", None)
                log_data.update(event)


def configure_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """Send every logger to stderr at `level`, in `fmt` ("plain" or "json"); replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WalletJsonFormatter() if fmt == "json" else logging.Formatter(PLAIN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
