"""The contract between the core, the proto and the client: one table of errors, one set of reasons."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import grpc
import pytest

from clients import _convert
from clients import errors as client_errors
from clients.wallet.v1 import wallet_pb2
from wallet_core import errors as domain_errors
from wallet_core.grpc_api.auth import Authenticator, parse_token_spec
from wallet_core.grpc_api.errors import STATUS

# DESIGN section 4
DESIGNED = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT": grpc.StatusCode.INVALID_ARGUMENT,
    "UNKNOWN_CURRENCY": grpc.StatusCode.INVALID_ARGUMENT, "ACCOUNT_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "STAKE_NOT_FOUND": grpc.StatusCode.NOT_FOUND, "INSUFFICIENT_FUNDS": grpc.StatusCode.FAILED_PRECONDITION,
    "ACCOUNT_BLOCKED": grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_SETTLED": grpc.StatusCode.FAILED_PRECONDITION,
    "STAKE_CANCELLED": grpc.StatusCode.FAILED_PRECONDITION, "CURRENCY_MISMATCH": grpc.StatusCode.FAILED_PRECONDITION,
    "STAKE_MISMATCH": grpc.StatusCode.FAILED_PRECONDITION, "NOT_CANCELLABLE": grpc.StatusCode.FAILED_PRECONDITION,
    "IDEMPOTENCY_CONFLICT": grpc.StatusCode.ALREADY_EXISTS, "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED, "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    # issue 12: an unsettle or resettle of a stake that is open
    "NOT_SETTLED": grpc.StatusCode.FAILED_PRECONDITION,
    # issue 12: the checks of DESIGN section 5 on what betflex asks us to pay
    "STAKE_AMOUNT_MISMATCH": grpc.StatusCode.FAILED_PRECONDITION,
    "PAYOUT_CAP_EXCEEDED": grpc.StatusCode.FAILED_PRECONDITION,
}


def test_every_domain_error_has_its_designed_status() -> None:
    assert {cls.reason: STATUS[cls] for cls in domain_errors.ALL_ERRORS} == DESIGNED


def test_the_proto_lists_every_reason() -> None:
    names = {name.removeprefix("ERROR_REASON_") for name in wallet_pb2.ErrorReason.keys()} - {"UNSPECIFIED"}
    assert names == set(DESIGNED)


def test_the_client_has_one_exception_class_per_reason() -> None:
    assert set(client_errors.BY_REASON) == set(DESIGNED)
    for reason, cls in client_errors.BY_REASON.items():
        assert cls.reason == reason and issubclass(cls, client_errors.WalletError)
    assert issubclass(client_errors.InvalidAmount, client_errors.InvalidArgument)


def test_tokens_grant_clients_and_nothing_else() -> None:
    hashed = "sha256:" + hashlib.sha256(b"hashed-token").hexdigest()
    auth = Authenticator(parse_token_spec(f"plain=fanteam,casino;{hashed}=*"))
    plain = auth.grant_for("Bearer plain")
    auth.check(plain, "casino")
    with pytest.raises(domain_errors.PermissionDenied):
        auth.check(plain, "other")
    auth.check(auth.grant_for("bearer hashed-token"), "anyone")
    for header in (None, "", "Bearer", "Basic plain", "Bearer wrong", f"Bearer {hashed}"):
        with pytest.raises(domain_errors.Unauthenticated):
            auth.grant_for(header)


def test_the_client_never_sends_a_float() -> None:
    assert _convert.amount(Decimal("12.50")) == "12.50"
    assert _convert.amount(5) == "5" and _convert.amount("1.0") == "1.0"
    for bad in (12.5, True, None):
        with pytest.raises(TypeError):
            _convert.amount(bad)  # type: ignore[arg-type]
