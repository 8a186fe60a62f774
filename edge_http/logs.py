"""One structured log line per callback: what betflex asked, what it got, how long it took.

The line is a JSON object (also attached to the record as `callback` for JSON formatters). It
names bets, pools and the client, never a token, and no user address. Its `request_id` (betflex's
`X-Request-ID`, or one the edge makes up) is sent to the core with every call of the callback,
so the core's access lines of the same callback carry it too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("edge_http.callbacks")

MAX_LISTED = 200  # uids listed per line; a longer list is cut and its length given


@dataclass
class CallbackRecord:
    """Filled in while a callback is handled (`req.context.callback`), written when it is answered."""

    route: str
    outcome: str = "error"
    client: str | None = None
    bet_uids: list[int] = field(default_factory=list)
    pool_uids: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    request_id: str | None = None

    def line(self, status: int, duration_ms: float) -> dict[str, Any]:
        line: dict[str, Any] = {
            "event": "betflex_callback",
            "route": self.route,
            "status": status,
            "outcome": self.outcome,
            "client": self.client,
            "bet_uids": self.bet_uids[:MAX_LISTED],
            "pool_uids": sorted(set(self.pool_uids))[:MAX_LISTED],
            "duration_ms": round(duration_ms, 2),
            "request_id": self.request_id,
        }
        if len(self.bet_uids) > MAX_LISTED:
            line["bet_count"] = len(self.bet_uids)
        if self.failed:
            line["failed"] = self.failed[:MAX_LISTED]
        if self.message:
            line["message"] = self.message[:500]
        return line


def write(record: CallbackRecord, status: int, duration_ms: float) -> None:
    line = record.line(status, duration_ms)
    level = logging.WARNING if status >= 500 else logging.INFO
    log.log(level, json.dumps(line, ensure_ascii=False, separators=(",", ":")), extra={"callback": line})
