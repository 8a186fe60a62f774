"""One exception class per error reason of the wallet API, and the failures of the way to it.

The core sends a gRPC status with a `google.rpc.ErrorInfo` (domain "wallet.v1") whose reason
names the class here. Errors that did not come from the core (deadline passed, connection
refused or broken) have classes of their own: `DeadlineExceeded`, `Unavailable` with
`connect_failed`, `TransportError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "wallet.v1"
_DETAILS_KEY = "grpc-status-details-bin"


class WalletError(Exception):
    """Base of every error the client raises for a failed call."""

    reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


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
    reason = "NOT_SETTLED"


class IdempotencyConflict(WalletError):
    reason = "IDEMPOTENCY_CONFLICT"


class Unauthenticated(WalletError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(WalletError):
    reason = "PERMISSION_DENIED"


class StakeAmountMismatch(WalletError):
    reason = "STAKE_AMOUNT_MISMATCH"


class PayoutCapExceeded(WalletError):
    reason = "PAYOUT_CAP_EXCEEDED"


class Unavailable(WalletError):
    """The core or its database could not serve the call; retrying is safe.

    `connect_failed` is True when no connection to the core could be made, so the request
    certainly never reached it.
    """

    reason = "UNAVAILABLE"

    def __init__(self, message: str, *, connect_failed: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.connect_failed = connect_failed


class DeadlineExceeded(WalletError):
    """No answer within the call's deadline: the call may or may not have been applied."""

    reason = "DEADLINE_EXCEEDED"


class TransportError(WalletError):
    """The call failed on its way (cancelled, broken, or an answer without a wallet reason)."""

    reason = "TRANSPORT_ERROR"


BY_REASON: dict[str, type[WalletError]] = {
    cls.reason: cls
    for cls in (
        InvalidArgument, InvalidAmount, UnknownCurrency, AccountNotFound, StakeNotFound, InsufficientFunds,
        AccountBlocked, AlreadySettled, StakeCancelled, CurrencyMismatch, StakeMismatch, NotCancellable,
        NotSettled, IdempotencyConflict, Unauthenticated, PermissionDenied, Unavailable, StakeAmountMismatch,
        PayoutCapExceeded,
    )
}

# A status code with no ErrorInfo (from gRPC itself, or a proxy) → the nearest class.
_BY_CODE: dict[grpc.StatusCode, type[WalletError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}

_CONNECT_FAILED = ("failed to connect", "connection refused", "dns resolution failed", "name resolution")


def _error_info(call: Any) -> error_details_pb2.ErrorInfo | None:
    try:
        trailers = call.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - no trailers to read is the same as no detail
        return None
    for key, value in trailers:
        if key != _DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == DOMAIN:
                    return info
    return None


def from_rpc_error(error: grpc.RpcError) -> WalletError:
    """The client exception for a failed call (sync or asyncio)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    info = _error_info(error)
    if info is not None:
        cls = BY_REASON.get(info.reason)
        if cls is not None:
            return cls(message, code=code, metadata=dict(info.metadata))
    cls = _BY_CODE.get(code, TransportError)
    if cls is Unavailable:
        lowered = message.lower()
        return Unavailable(message, code=code, connect_failed=any(s in lowered for s in _CONNECT_FAILED))
    return cls(message, code=code)
