"""GET /openapi.json: a hand-written OpenAPI 3.1 description of the edge (kept beside docs/edge.md)."""

from __future__ import annotations

import copy
from typing import Any

from edge_http.betflex import MAX_CLIENT_LENGTH

AMOUNT_PATTERN = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
CURRENCY_PATTERN = r"^[A-Z][A-Z0-9]{2,9}$"
UID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
USER_UID = {
    "oneOf": [UID, {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,18})$"}],
    "description": "The user's id: a number on /bets, a string of digits on /winners; 1001 and \"1001\" are the same user.",
}

BETS_CODES = [
    "insufficient_funds", "wallet_not_found", "currency_not_supported", "account_blocked",
    "invalid_amount", "invalid_request", "wallet_unavailable", "permission_denied",
]
WINNERS_REASONS = [
    "unknown_bet", "stake_mismatch", "currency_mismatch", "settlement_conflict", "stake_cancelled",
    "wallet_not_found", "invalid_amount", "currency_not_supported", "invalid_request", "wallet_unavailable",
    "permission_denied",
]
TENANT = "Must be a client the caller's token may act for (WALLET_EDGE_TOKENS), else the whole callback is refused."


def _error(codes: list[str] | None = None, description: str = "") -> dict[str, Any]:
    code: dict[str, Any] = {"type": "string"}
    if codes:
        code["enum"] = codes
    return {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": code, "message": {"type": "string"}},
        **({"description": description} if description else {}),
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


TRANSPORT_RESPONSES = {
    "401": _json(_error(["unauthorized"]), "No or wrong `Authorization: Bearer <token>`. Nothing was done."),
    "403": _json(_error(["forbidden"]), "The caller's address is not in the allowlist. Nothing was done."),
    "408": _json(_error(["request_timeout"]), "The body did not arrive in time. Nothing was done."),
    "413": _json(_error(["payload_too_large"]), "The body is larger than the configured cap. Nothing was done."),
    "415": _json(_error(["unsupported_media_type"]), "The body is not `application/json`. Nothing was done."),
    "500": _json(_error(["internal_error"]), "The edge failed unexpectedly; the outcome is unknown: deliver again."),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Wallet: betflex callbacks",
        "version": "1.0.0",
        "description": (
            "The HTTP edge of the wallet for the betflex sportsbook. `POST /bets` takes the stakes of a bet "
            "slip atomically; `POST /winners` settles bets one by one. Every callback is idempotent: betflex "
            "may deliver it again and gets the first answer. **A 402 on /bets means that no money moved.** "
            "A 503 on /bets means the outcome could not be established: deliver the same callback again."
        ),
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _error(),
            "BetsRequest": {
                "type": "object",
                "required": ["bets"],
                "properties": {"bets": {"type": "array", "minItems": 1, "items": _ref("BetsItem")}},
                "description": "Unknown fields are ignored. Every bet must belong to the same `user.client`; bet uids must be distinct.",
            },
            "BetsItem": {
                "type": "object",
                "required": ["user", "pool", "bet"],
                "properties": {
                    "user": {
                        "type": "object", "required": ["client", "uid"],
                        "properties": {
                            "client": {"type": "string", "minLength": 1, "maxLength": MAX_CLIENT_LENGTH, "description": "The tenant. " + TENANT},
                            "uid": USER_UID,
                            "ip": {"type": "string", "description": "Not used."},
                        },
                    },
                    "pool": {
                        "type": "object", "required": ["currency", "uid"],
                        "properties": {
                            "currency": {"type": "string", "pattern": CURRENCY_PATTERN},
                            "uid": UID,
                            "client": {"type": "string", "minLength": 1, "maxLength": 128,
                                       "description": "The pool's tenant (the wallet is user.client's). " + TENANT},
                            "game": {"type": "string", "description": "Not used."},
                            "overdraw": {"type": "string", "description": "Not used."},
                        },
                    },
                    "bet": {
                        "type": "object", "required": ["uid", "amount"],
                        "properties": {
                            "uid": UID,
                            "amount": {"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["15.00"]},
                        },
                    },
                },
            },
            "BetsOk": {
                "type": "object",
                "required": ["status", "bets"],
                "properties": {
                    "status": {"const": "ok"},
                    "bets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["uid", "transaction_id", "balance"],
                            "properties": {
                                "uid": UID,
                                "transaction_id": {"type": "string", "examples": ["betflex:fanteam:bet:9000001"]},
                                "balance": {"type": "string", "description": "The wallet's balance right after this stake."},
                            },
                        },
                    },
                },
            },
            "WinnersRequest": {
                "type": "object",
                "required": ["pools"],
                "properties": {"pools": {"type": "array", "minItems": 1, "items": _ref("WinnersPool")}},
                "description": "Unknown fields are ignored; so are odds, rake, base_payout, result, extra and the pool's other fields.",
            },
            "WinnersPool": {
                "type": "object",
                "required": ["bets"],
                "properties": {
                    "pool": {
                        "type": "object", "required": ["overdraw"],
                        "properties": {
                            "uid": UID,
                            "client": {"type": "string", "minLength": 1, "maxLength": 128, "description": TENANT},
                            "overdraw": {"type": "string", "description": (
                                "The pool's total payout: the pool's payouts, earlier callbacks included, may not exceed"
                                " it (overdraw_exceeded).")},
                        },
                        "description": "`uid` is the payout's reference; `client` is checked against the token.",
                    },
                    "bets": {"type": "array", "items": _ref("WinnersBet")},
                },
            },
            "WinnersBet": {
                "type": "object",
                "required": ["user", "bet"],
                "properties": {
                    "user": {
                        "type": "object", "required": ["client", "uid"],
                        "properties": {
                            "client": {"type": "string", "minLength": 1, "maxLength": MAX_CLIENT_LENGTH, "description": TENANT},
                            "uid": USER_UID,
                            "name": {"type": "string", "description": "Not used."},
                        },
                    },
                    "bet": {
                        "type": "object", "required": ["uid", "currency", "payout", "amount"],
                        "properties": {
                            "uid": UID,
                            "amount": {"type": "string", "description": "Must be the stake taken for the bet (stake_mismatch)."},
                            "currency": {"type": "string", "description": "Must be the stake's currency."},
                            "payout": {"type": "string", "pattern": AMOUNT_PATTERN, "description": "May be \"0\"."},
                        },
                    },
                },
            },
            "WinnersOk": {
                "type": "object",
                "required": ["status", "settled"],
                "properties": {"status": {"const": "ok"}, "settled": {"type": "array", "items": UID}},
            },
            "TenantRefused": {
                "type": "object",
                "required": ["error", "message", "settled", "failed"],
                "properties": {
                    "error": {"const": "permission_denied"},
                    "message": {"type": "string"},
                    "settled": {"type": "array", "maxItems": 0},
                    "failed": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["bet_uid", "reason", "message"],
                            "properties": {"bet_uid": UID, "reason": {"const": "permission_denied"}, "message": {"type": "string"}},
                        },
                    },
                },
            },
            "SettlementFailed": {
                "type": "object",
                "required": ["error", "message", "settled", "failed"],
                "properties": {
                    "error": {"const": "settlement_failed"},
                    "message": {"type": "string"},
                    "settled": {"type": "array", "items": UID, "description": "Bets settled now or earlier."},
                    "failed": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["bet_uid", "reason", "message"],
                            "properties": {
                                "bet_uid": UID,
                                "reason": {"type": "string", "enum": WINNERS_REASONS},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/bets": {
            "post": {
                "summary": "Take the stakes of a bet slip (all or none)",
                "operationId": "placeBets",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("BetsRequest")}}},
                "responses": {
                    "200": _json(_ref("BetsOk"), "Every stake was taken (now, or by an earlier delivery of this callback)."),
                    "400": _json(_error(["invalid_request"]), "An unreadable Content-Length header. Nothing was done."),
                    "402": _json(
                        _error(BETS_CODES),
                        "None of the slip's bets is taken and none ever will be, on the wallet's word: a malformed "
                        "body, a refusal by the wallet, or bets the wallet fenced when it could not take them in time.",
                    ),
                    "409": _json(
                        _error(["duplicate_bet_conflict"]),
                        "A bet uid of the slip is already taken with other content, or the slip mixes taken and new "
                        "bets: nothing more was taken (money did move for that uid, so this is not a 402).",
                    ),
                    **TRANSPORT_RESPONSES,
                    "503": _json(
                        _error(["wallet_unavailable"]),
                        "The outcome is unknown (money may have moved): deliver the same callback again.",
                    ),
                },
            }
        },
        "/winners": {
            "post": {
                "summary": "Settle bets (each on its own)",
                "operationId": "settleWinners",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("WinnersRequest")}}},
                "responses": {
                    "200": _json(_ref("WinnersOk"), "Every bet is settled (now, or earlier)."),
                    "400": _json(_error(["invalid_request"]), "A malformed body; nothing was settled."),
                    **TRANSPORT_RESPONSES,
                    "403": {
                        "description": "The caller's address is not in the allowlist (`forbidden`), or the callback "
                                       "names a client its token may not act for (`permission_denied`, every bet in "
                                       "`failed`). Nothing was settled.",
                        "content": {"application/json": {"schema": {"oneOf": [
                            _error(["forbidden"]), _ref("TenantRefused"),
                        ]}}},
                    },
                    "422": _json(
                        _ref("SettlementFailed"),
                        "Some bets could not be settled for a reason a retry alone does not fix (unknown bet, "
                        "wrong currency, ...); the others were. The failures are kept for operators.",
                    ),
                    "503": _json(
                        _ref("SettlementFailed"),
                        "Some bets could not be settled because the wallet was unavailable; retry the callback.",
                    ),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process runs",
                "security": [],
                "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "The wallet core answers within one second",
                "security": [],
                "responses": {
                    "200": _json({"type": "object", "properties": {"status": {"const": "ready"}, "detail": {"type": "string"}}}, "Ready."),
                    "503": _json({"type": "object", "properties": {"status": {"const": "unavailable"}, "detail": {"type": "string"}}}, "Not ready."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return copy.deepcopy(DOCUMENT)
