"""The one table from domain errors to gRPC status codes, and the `google.rpc.ErrorInfo` they carry.

Nothing else in the core decides a status code. A reason's code follows DESIGN section 4;
the ErrorInfo's `reason` is the domain error's stable upper-case code, its domain "wallet.v1".
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from wallet_core import errors

DOMAIN = "wallet.v1"

STATUS: dict[type[errors.WalletError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidAmount: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnknownCurrency: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AccountNotFound: grpc.StatusCode.NOT_FOUND,
    errors.StakeNotFound: grpc.StatusCode.NOT_FOUND,
    errors.InsufficientFunds: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AccountBlocked: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AlreadySettled: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StakeCancelled: grpc.StatusCode.FAILED_PRECONDITION,
    errors.CurrencyMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StakeMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotCancellable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotSettled: grpc.StatusCode.FAILED_PRECONDITION,
    errors.IdempotencyConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StakeAmountMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PayoutCapExceeded: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_of(error: errors.WalletError) -> grpc.Status:
    """The rich status for a domain error: its code from STATUS, its reason in an ErrorInfo."""
    code = STATUS.get(type(error), grpc.StatusCode.INTERNAL)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=error.message, details=[detail]))
