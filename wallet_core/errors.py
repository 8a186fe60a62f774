"""Domain errors. Each has one stable upper-case `reason` (google.rpc.ErrorInfo.reason on the wire).

The mapping from these to gRPC status codes is one table in wallet_core/grpc_api/errors.py;
nothing else decides a status code.
"""

from __future__ import annotations

from typing import ClassVar


class WalletError(Exception):
    """Base of every error the ledger reports to a caller."""

    reason: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {k: str(v) for k, v in metadata.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidArgument(WalletError):
    reason = "INVALID_ARGUMENT"


class InvalidAmount(InvalidArgument):
    reason = "INVALID_AMOUNT"


class UnknownCurrency(InvalidArgument):
    reason = "UNKNOWN_CURRENCY"


class AccountNotFound(WalletError):
    reason = "ACCOUNT_NOT_FOUND"


class StakeNotFound(WalletError):
    reason = "STAKE_NOT_FOUND"


class InsufficientFunds(WalletError):
    reason = "INSUFFICIENT_FUNDS"


class AccountBlocked(WalletError):
    reason = "ACCOUNT_BLOCKED"


class AlreadySettled(WalletError):
    reason = "ALREADY_SETTLED"


class StakeCancelled(WalletError):
    reason = "STAKE_CANCELLED"


class CurrencyMismatch(WalletError):
    reason = "CURRENCY_MISMATCH"


class StakeMismatch(WalletError):
    reason = "STAKE_MISMATCH"


class NotCancellable(WalletError):
    reason = "NOT_CANCELLABLE"


class NotSettled(WalletError):
    """An unsettle or resettle named a stake that is open: there is no settlement to correct."""

    reason = "NOT_SETTLED"


class IdempotencyConflict(WalletError):
    reason = "IDEMPOTENCY_CONFLICT"


class Unauthenticated(WalletError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(WalletError):
    reason = "PERMISSION_DENIED"


class StakeAmountMismatch(WalletError):
    """A payout names another stake amount than the stake that was taken (betflex: stake_mismatch)."""

    reason = "STAKE_AMOUNT_MISMATCH"


class PayoutCapExceeded(WalletError):
    """The payouts of one reference (a betflex pool) would total more than their cap (its overdraw)."""

    reason = "PAYOUT_CAP_EXCEEDED"


class Unavailable(WalletError):
    """The database cannot be reached or kept failing; nothing was applied, safe to retry."""

    reason = "UNAVAILABLE"


ALL_ERRORS: tuple[type[WalletError], ...] = (
    InvalidArgument,
    InvalidAmount,
    UnknownCurrency,
    AccountNotFound,
    StakeNotFound,
    InsufficientFunds,
    AccountBlocked,
    AlreadySettled,
    StakeCancelled,
    CurrencyMismatch,
    StakeMismatch,
    NotCancellable,
    NotSettled,
    IdempotencyConflict,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
    StakeAmountMismatch,
    PayoutCapExceeded,
)

BY_REASON: dict[str, type[WalletError]] = {cls.reason: cls for cls in ALL_ERRORS}
