"""The edge's two error tables: client (gRPC) errors → betflex codes, one for each callback.

Nothing else in the edge decides a betflex code for a core error. Lookups walk the error's
class hierarchy, so a subclass the client may add later falls back to its parent's row, and
an error no row knows gets `wallet_unavailable`.
"""

from __future__ import annotations

import logging
from typing import Any

from clients.errors import (
    AccountBlocked,
    AccountNotFound,
    AlreadySettled,
    CurrencyMismatch,
    DeadlineExceeded,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    NotCancellable,
    PayoutCapExceeded,
    PermissionDenied,
    StakeAmountMismatch,
    StakeCancelled,
    StakeMismatch,
    StakeNotFound,
    TransportError,
    Unauthenticated,
    Unavailable,
    UnknownCurrency,
    WalletError,
)

WALLET_UNAVAILABLE = "wallet_unavailable"
SETTLEMENT_CONFLICT = "settlement_conflict"


class EdgeCallFailed(WalletError):
    """A call to the core ended in something the client does not report: it ran past its own
    timeout, or raised an exception that is not a WalletError. Nobody knows whether it was
    applied; it is in no table, so it is treated as the worst case."""

    reason = "EDGE_CALL_FAILED"

    def __init__(self, message: str) -> None:  # the client's constructor is not ours to rely on
        Exception.__init__(self, message)
        self.message = message

# POST /bets: the {"error": code} of a 402 (and of the 409, duplicate_bet_conflict) for a core error.
BETS_CODES: dict[type[WalletError], str] = {
    InsufficientFunds: "insufficient_funds",
    AccountNotFound: "wallet_not_found",
    UnknownCurrency: "currency_not_supported",
    AccountBlocked: "account_blocked",
    InvalidAmount: "invalid_amount",
    InvalidArgument: "invalid_request",
    IdempotencyConflict: "duplicate_bet_conflict",
    # the bet's id was cancelled (tombstoned) after an earlier delivery could not be confirmed
    StakeCancelled: WALLET_UNAVAILABLE,
    Unavailable: WALLET_UNAVAILABLE,
    DeadlineExceeded: WALLET_UNAVAILABLE,
    TransportError: WALLET_UNAVAILABLE,
    # the core refuses the edge's core token the client the callback names (edge_http.tenants says the same)
    PermissionDenied: "permission_denied",
    Unauthenticated: WALLET_UNAVAILABLE,
}

# POST /winners: the `reason` of each entry of "failed".
WINNERS_REASONS: dict[type[WalletError], str] = {
    StakeNotFound: "unknown_bet",
    StakeMismatch: "stake_mismatch",
    StakeAmountMismatch: "stake_mismatch",  # the bet's `amount` is not the stake taken (DESIGN section 5)
    PayoutCapExceeded: "overdraw_exceeded",  # the pool's payouts would exceed its `overdraw`
    CurrencyMismatch: "currency_mismatch",
    AlreadySettled: SETTLEMENT_CONFLICT,
    IdempotencyConflict: SETTLEMENT_CONFLICT,
    StakeCancelled: "stake_cancelled",
    AccountNotFound: "wallet_not_found",
    InvalidAmount: "invalid_amount",
    UnknownCurrency: "currency_not_supported",
    InvalidArgument: "invalid_request",
    PermissionDenied: "permission_denied",
}

# The core answered and refused: nothing was applied, and the same call gets the same answer.
DEFINITE: tuple[type[WalletError], ...] = (
    InvalidArgument, AccountNotFound, StakeNotFound, InsufficientFunds, AccountBlocked, AlreadySettled,
    StakeCancelled, CurrencyMismatch, StakeMismatch, NotCancellable, IdempotencyConflict,
    Unauthenticated, PermissionDenied, StakeAmountMismatch, PayoutCapExceeded,
)
# Refusals the ledger records for every item of the Debit, in the commit that refuses it: a
# decision about every bet of the slip, replayed as such to every later delivery.
RECORDED_REFUSALS: tuple[type[WalletError], ...] = (InsufficientFunds, AccountNotFound, AccountBlocked)
# Definite Debit answers that say an id was used before (a conflict, a tombstone): what the ids
# are now is learnt by fencing them.
SEEN_BEFORE: tuple[type[WalletError], ...] = (IdempotencyConflict, StakeCancelled)
# The core refused the edge itself: a configuration fault (WALLET_CORE_TOKEN or the clients it may touch).
CONFIGURATION: tuple[type[WalletError], ...] = (Unauthenticated, PermissionDenied)
# The core refuses this edge the client a callback names: no delivery through this edge can ever take it.
NOT_THIS_EDGE: tuple[type[WalletError], ...] = (PermissionDenied,)
# Failures of the way to the core, not answers of the core: a later call may succeed.
TRANSPORT: tuple[type[WalletError], ...] = (Unavailable, DeadlineExceeded, TransportError)


def _lookup(table: dict[type[WalletError], str], error: WalletError) -> str | None:
    for cls in type(error).__mro__:
        code = table.get(cls)
        if code is not None:
            return code
    return None


def bets_code(error: WalletError) -> str:
    return _lookup(BETS_CODES, error) or WALLET_UNAVAILABLE


def winners_reason(error: WalletError) -> str:
    return _lookup(WINNERS_REASONS, error) or WALLET_UNAVAILABLE


def is_definite(error: WalletError) -> bool:
    """The core answered and refused: nothing was applied; repeating the call gives the same answer."""
    return isinstance(error, DEFINITE)


def reason_of(error: WalletError) -> str:
    """The core's stable reason (e.g. "INSUFFICIENT_FUNDS"), or the error's class name."""
    return str(getattr(error, "reason", "") or type(error).__name__)


log = logging.getLogger("edge_http.core")
# What betflex reads when the core did not answer with a refusal of its own.
UNAVAILABLE_MESSAGE = "the wallet is unavailable"


def detail_of(error: WalletError) -> str:
    """The error's own text, for the edge's logs only: gRPC's details name internal addresses
    (`failed to connect to all addresses; last error: ... ipv4:10.0.0.5:50051 ...`)."""
    return str(getattr(error, "message", "") or error or type(error).__name__)


def message_of(error: WalletError) -> str:
    """The text betflex may read about `error`: a refusal of the core passes on its own message;
    anything else (a failure on the way to the core, a refusal of the edge's own token, an error no
    table knows) is logged here with its details, once, and answered "the wallet is unavailable"."""
    if is_definite(error) and not isinstance(error, CONFIGURATION):
        return detail_of(error)
    if not getattr(error, "_edge_detail_logged", False):
        log.warning("wallet core call failed: %s %s", reason_of(error), detail_of(error))
        error._edge_detail_logged = True  # type: ignore[attr-defined]  # a mark on this error object only
    return UNAVAILABLE_MESSAGE


def note_core_error(metrics: Any, error: WalletError, call: str, subject: object) -> None:
    """Count a failed core call, and log what an operator must act on (never a definite refusal)."""
    metrics.core_error(reason_of(error))
    if isinstance(error, CONFIGURATION):
        log.error(
            "the wallet core refused the edge's own credentials on %s (%s): check WALLET_CORE_TOKEN and the "
            "clients it may touch", call, reason_of(error),
        )
    elif not is_definite(error):
        log.warning("%s for %s failed: %s %s", call, subject, reason_of(error), detail_of(error))
        error._edge_detail_logged = True  # type: ignore[attr-defined]  # message_of need not log it again
