"""JSON answers: every body the edge writes goes through here."""

from __future__ import annotations

from typing import Any

import falcon
import msgspec

_ENCODER = msgspec.json.Encoder()


def send_json(resp: falcon.Response, status: int, body: Any) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = _ENCODER.encode(body)


def send_error(resp: falcon.Response, status: int, code: str, message: str, **extra: Any) -> None:
    send_json(resp, status, {"error": code, "message": message, **extra})
