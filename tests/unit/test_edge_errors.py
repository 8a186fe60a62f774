"""The edge's two error tables: one for /bets (402 codes), one for /winners (failure reasons)."""

from __future__ import annotations

import pytest

from clients import errors as client_errors
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
    PermissionDenied,
    StakeCancelled,
    StakeMismatch,
    StakeNotFound,
    TransportError,
    Unauthenticated,
    Unavailable,
    UnknownCurrency,
    WalletError,
)
from edge_http import errors


def error(cls: type[WalletError]) -> WalletError:
    return cls("refused")


def unavailable(connect_failed: bool) -> WalletError:
    return Unavailable("unavailable", connect_failed=connect_failed)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (InsufficientFunds, "insufficient_funds"),
        (AccountNotFound, "wallet_not_found"),
        (UnknownCurrency, "currency_not_supported"),
        (AccountBlocked, "account_blocked"),
        (InvalidAmount, "invalid_amount"),
        (InvalidArgument, "invalid_request"),
        (IdempotencyConflict, "duplicate_bet_conflict"),
        (StakeCancelled, "wallet_unavailable"),
        (Unavailable, "wallet_unavailable"),
        (DeadlineExceeded, "wallet_unavailable"),
        (TransportError, "wallet_unavailable"),
        (PermissionDenied, "permission_denied"),
        (Unauthenticated, "wallet_unavailable"),
        (WalletError, "wallet_unavailable"),
    ],
)
def test_bets_table(cls: type[WalletError], code: str) -> None:
    assert errors.bets_code(error(cls)) == code


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (StakeNotFound, "unknown_bet"),
        (StakeMismatch, "stake_mismatch"),
        (CurrencyMismatch, "currency_mismatch"),
        (AlreadySettled, "settlement_conflict"),
        (IdempotencyConflict, "settlement_conflict"),
        (StakeCancelled, "stake_cancelled"),
        (AccountNotFound, "wallet_not_found"),
        (InvalidAmount, "invalid_amount"),
        (UnknownCurrency, "currency_not_supported"),
        (InvalidArgument, "invalid_request"),
        (Unavailable, "wallet_unavailable"),
        (DeadlineExceeded, "wallet_unavailable"),
        (TransportError, "wallet_unavailable"),
        (Unauthenticated, "wallet_unavailable"),
        (PermissionDenied, "permission_denied"),
        (NotCancellable, "wallet_unavailable"),
        (WalletError, "wallet_unavailable"),
    ],
)
def test_winners_table(cls: type[WalletError], reason: str) -> None:
    assert errors.winners_reason(error(cls)) == reason


def test_a_subclass_the_client_adds_later_falls_back_to_its_parents_row() -> None:
    class NewKindOfAmountProblem(InvalidAmount):
        pass

    assert errors.bets_code(error(NewKindOfAmountProblem)) == "invalid_amount"
    assert errors.winners_reason(error(NewKindOfAmountProblem)) == "invalid_amount"


def test_every_error_class_of_the_client_has_a_bets_code() -> None:
    classes = [c for c in vars(client_errors).values() if isinstance(c, type) and issubclass(c, WalletError)]
    assert len(classes) >= 19
    for cls in classes:
        assert errors.bets_code(error(cls)) in {
            "insufficient_funds", "wallet_not_found", "currency_not_supported", "account_blocked",
            "invalid_amount", "invalid_request", "duplicate_bet_conflict", "wallet_unavailable", "permission_denied",
        }


@pytest.mark.parametrize(
    ("made", "definite"),
    [
        (lambda: error(InsufficientFunds), True),
        (lambda: error(IdempotencyConflict), True),
        (lambda: error(StakeCancelled), True),
        (lambda: error(Unauthenticated), True),
        (lambda: error(PermissionDenied), True),
        (lambda: unavailable(connect_failed=True), False),  # a failed connect proves nothing (DESIGN §5)
        (lambda: unavailable(connect_failed=False), False),
        (lambda: error(DeadlineExceeded), False),
        (lambda: error(TransportError), False),
        (lambda: error(WalletError), False),  # unknown: the worst case
    ],
)
def test_which_failures_are_answers_of_the_core(made, definite: bool) -> None:
    assert errors.is_definite(made()) is definite


def test_betflex_reads_the_core_refusals_own_words_and_nothing_of_the_way_to_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 11: gRPC's details name internal addresses; they are logged, not answered."""
    refusal = InsufficientFunds("wallet fanteam/1001/EUR has insufficient funds for a debit of 15.00")
    assert errors.message_of(refusal) == refusal.message
    details = "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:50051: Connection refused"
    for failure in [unavailable(connect_failed=True), error(DeadlineExceeded), error(TransportError),
                    error(WalletError), error(Unauthenticated), errors.EdgeCallFailed(details)]:
        failure.message = details
        with caplog.at_level("WARNING", logger="edge_http.core"):
            caplog.clear()
            assert errors.message_of(failure) == errors.message_of(failure) == "the wallet is unavailable"
        assert [r.getMessage() for r in caplog.records if "10.1.2.3:50051" in r.getMessage()] != []
        assert len(caplog.records) == 1  # once per error, however often it is answered
