"""Requests from the client's values, client values from responses. Shared by both clients."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from clients import models as m
from clients.errors import BY_REASON, TransportError, WalletError
from clients.wallet.v1 import wallet_pb2 as pb

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Spec(Generic[T]):
    """One call: the RPC's name, its request, how to read its response, extra metadata."""

    method: str
    request: Any
    parse: Callable[[Any], T]
    metadata: tuple[tuple[str, str | bytes], ...] = ()


def amount(value: str | Decimal | int) -> str:
    """Money goes out as a decimal string. Floats are refused: they are not exact."""
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise TypeError(f"an amount must be a str, Decimal or int, not {type(value).__name__}")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _prefix(proto_enum: EnumTypeWrapper) -> str:
    return proto_enum.Name(0).removesuffix("UNSPECIFIED")


def enum_out(proto_enum: EnumTypeWrapper, value: enum.Enum) -> str:
    """The proto enum value's name (e.g. PURPOSE_STAKE): the generated constructors take it as the value."""
    return _prefix(proto_enum) + value.name


def enum_or_none(proto_enum: EnumTypeWrapper, value: int, cls: type[E]) -> E | None:
    """A value the core may leave UNSPECIFIED (None)."""
    if value == 0:
        return None
    return cls[proto_enum.Name(value).removeprefix(_prefix(proto_enum))]


def enum_in(proto_enum: EnumTypeWrapper, value: int, cls: type[E]) -> E:
    """A value the core always sets: UNSPECIFIED is an answer this client cannot read."""
    found = enum_or_none(proto_enum, value, cls)
    if found is None:
        raise TransportError(f"the core's answer has no {cls.__name__}")
    return found


def when(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def ref(value: m.AccountRef) -> pb.AccountRef:
    return pb.AccountRef(client=value.client, user_id=value.user_id, currency=value.currency)


def ref_in(msg: pb.AccountRef) -> m.AccountRef:
    return m.AccountRef(msg.client, msg.user_id, msg.currency)


def account(msg: pb.Account) -> m.Account:
    status = enum_or_none(pb.AccountStatus, msg.status, m.AccountStatus)
    return m.Account(ref_in(msg.ref), Decimal(msg.balance), status or m.AccountStatus.ACTIVE, when(msg.created_at))


def transaction(msg: pb.Transaction) -> m.Transaction:
    return m.Transaction(
        transaction_id=msg.transaction_id,
        account=ref_in(msg.account),
        purpose=enum_in(pb.Purpose, msg.purpose, m.Purpose),
        amount=Decimal(msg.amount),
        balance_after=Decimal(msg.balance_after) if msg.balance_after else None,
        status=enum_in(pb.TransactionStatus, msg.status, m.TransactionStatus),
        reference=msg.reference,
        settles_transaction_id=msg.settles_transaction_id,
        stake_state=enum_or_none(pb.StakeState, msg.stake_state, m.StakeState),
        created_at=when(msg.created_at),
    )


def failure(msg: pb.SettlementFailure) -> m.SettlementFailure:
    return m.SettlementFailure(
        client=msg.client, transaction_id=msg.transaction_id, settles_transaction_id=msg.settles_transaction_id,
        account=ref_in(msg.account), amount=msg.amount, reason=msg.reason, message=msg.message,
        attempts=msg.attempts, first_seen=when(msg.first_seen), last_seen=when(msg.last_seen),
        resolved_at=when(msg.resolved_at) if msg.HasField("resolved_at") else None,
    )


# ---------------------------------------------------------------- one (request, parser) per call


def open_account(account_ref: m.AccountRef) -> Spec[tuple[m.Account, bool]]:
    request = pb.OpenAccountRequest(account=ref(account_ref))
    return Spec("OpenAccount", request, lambda r: (account(r.account), r.created))


def get_balance(account_ref: m.AccountRef) -> Spec[m.Account]:
    return Spec("GetBalance", pb.GetBalanceRequest(account=ref(account_ref)), lambda r: account(r.account))


def set_account_status(account_ref: m.AccountRef, status: m.AccountStatus) -> Spec[m.Account]:
    request = pb.SetAccountStatusRequest(account=ref(account_ref), status=enum_out(pb.AccountStatus, status))
    return Spec("SetAccountStatus", request, lambda r: account(r.account))


def debit(items: Sequence[m.DebitItem]) -> Spec[m.DebitResult]:
    request = pb.DebitRequest(items=[
        pb.DebitItem(transaction_id=i.transaction_id, account=ref(i.account), amount=amount(i.amount),
                     purpose=enum_out(pb.Purpose, i.purpose), reference=i.reference)
        for i in items
    ])
    return Spec("Debit", request, lambda r: m.DebitResult(tuple(transaction(t) for t in r.transactions), r.replayed))


def credit(transaction_id: str, account_ref: m.AccountRef, value: str | Decimal | int, purpose: m.Purpose,
           settles_transaction_id: str, reference: str) -> Spec[m.CreditResult]:
    request = pb.CreditRequest(
        transaction_id=transaction_id, account=ref(account_ref), amount=amount(value),
        purpose=enum_out(pb.Purpose, purpose), settles_transaction_id=settles_transaction_id, reference=reference,
    )
    return Spec("Credit", request, lambda r: m.CreditResult(transaction(r.transaction), r.replayed))


def settle_batch(items: Sequence[m.SettleItem]) -> Spec[list[m.SettleResult]]:
    request = pb.SettleBatchRequest(items=[
        pb.SettleItem(transaction_id=i.transaction_id, account=ref(i.account), amount=amount(i.amount),
                      settles_transaction_id=i.settles_transaction_id, reference=i.reference,
                      stake_amount=amount(i.stake_amount), payout_cap=amount(i.payout_cap))
        for i in items
    ])

    def parse(r: pb.SettleBatchResponse) -> list[m.SettleResult]:
        results = []
        for x in r.results:
            if x.reason:
                error = BY_REASON.get(x.reason, WalletError)(x.message)
                results.append(m.SettleResult(x.transaction_id, None, x.replayed, error))
            else:
                results.append(m.SettleResult(x.transaction_id, transaction(x.transaction), x.replayed, None))
        return results

    return Spec("SettleBatch", request, parse)


def cancel(client: str, transaction_id: str, reference: str) -> Spec[m.CancelResult]:
    request = pb.CancelRequest(client=client, transaction_id=transaction_id, reference=reference)

    def parse(r: pb.CancelResponse) -> m.CancelResult:
        outcome = enum_in(pb.CancelOutcome, r.outcome, m.CancelOutcome)
        return m.CancelResult(outcome, transaction(r.transaction), r.replayed)

    return Spec("Cancel", request, parse)


def fence(client: str, transaction_ids: Sequence[str], reference: str) -> Spec[m.FenceResult]:
    request = pb.FenceRequest(client=client, transaction_ids=list(transaction_ids), reference=reference)

    def parse(r: pb.FenceResponse) -> m.FenceResult:
        return m.FenceResult(tuple(
            m.FencedId(f.transaction_id, enum_in(pb.FenceOutcome, f.outcome, m.FenceOutcome),
                       transaction(f.transaction), f.reason, f.replayed)
            for f in r.results
        ))

    return Spec("Fence", request, parse)


def list_transactions(account_ref: m.AccountRef, page_size: int, page_token: str) -> Spec[m.TransactionPage]:
    request = pb.ListTransactionsRequest(account=ref(account_ref), page_size=page_size, page_token=page_token)
    return Spec("ListTransactions", request, lambda r: m.TransactionPage(
        tuple(transaction(t) for t in r.transactions), r.next_page_token))


def list_settlement_failures(
    client: str, include_resolved: bool, limit: int, page_token: str
) -> Spec[m.SettlementFailurePage]:
    request = pb.ListSettlementFailuresRequest(
        client=client, include_resolved=include_resolved, limit=limit, page_token=page_token)
    return Spec("ListSettlementFailures", request, lambda r: m.SettlementFailurePage(
        tuple(failure(f) for f in r.failures), r.next_page_token))


# ---------------------------------------------------------------- settlement corrections and operators

REASON_METADATA = "wallet-reason-bin"  # makes a Debit, Credit or Cancel an audited operator action


def with_reason(spec: Spec[T], reason: str | None) -> Spec[T]:
    """The call with the operator's reason as metadata (None: not an operator action)."""
    if reason is None:
        return spec
    return dataclasses.replace(spec, metadata=(*spec.metadata, (REASON_METADATA, reason.encode("utf-8"))))


def _money(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def correction(msg: pb.CorrectionResponse) -> m.CorrectionResult:
    return m.CorrectionResult(
        transaction(msg.transaction), msg.replayed, Decimal(msg.previous_payout) if msg.previous_payout else None,
        _money(msg.taken), _money(msg.debt_added), _money(msg.debt_repaid),
    )


def audit_entry(msg: pb.AuditEntry) -> m.AuditEntry:
    return m.AuditEntry(msg.id, when(msg.at), msg.client, msg.actor, msg.action, msg.transaction_id, msg.target,
                        msg.reason, msg.outcome)


def _clawback(value: m.ClawbackPolicy | None) -> str | None:
    return None if value is None else enum_out(pb.ClawbackPolicy, value)


def unsettle(client: str, transaction_id: str, settles_transaction_id: str, reason: str, reference: str,
             clawback: m.ClawbackPolicy | None) -> Spec[m.CorrectionResult]:
    request = pb.UnsettleRequest(client=client, transaction_id=transaction_id,
                                 settles_transaction_id=settles_transaction_id, reference=reference, reason=reason,
                                 clawback=_clawback(clawback))
    return Spec("Unsettle", request, correction)


def resettle(client: str, transaction_id: str, settles_transaction_id: str, value: str | Decimal | int, reason: str,
             reference: str, clawback: m.ClawbackPolicy | None) -> Spec[m.CorrectionResult]:
    request = pb.ResettleRequest(client=client, transaction_id=transaction_id,
                                 settles_transaction_id=settles_transaction_id, amount=amount(value),
                                 reference=reference, reason=reason, clawback=_clawback(clawback))
    return Spec("Resettle", request, correction)


def lookup_transaction(client: str, transaction_id: str) -> Spec[m.TransactionLookup]:
    request = pb.LookupTransactionRequest(client=client, transaction_id=transaction_id)
    return Spec("LookupTransaction", request, lambda r: m.TransactionLookup(
        transaction(r.transaction) if r.HasField("transaction") else None,
        tuple(transaction(t) for t in r.related), tuple(failure(f) for f in r.failures),
        tuple(audit_entry(a) for a in r.audit)))


def resolve_settlement_failure(client: str, transaction_id: str, resolution: m.Resolution,
                               reason: str) -> Spec[m.ResolvedFailure]:
    request = pb.ResolveSettlementFailureRequest(client=client, transaction_id=transaction_id,
                                                 resolution=enum_out(pb.Resolution, resolution), reason=reason)
    return Spec("ResolveSettlementFailure", request, lambda r: m.ResolvedFailure(
        failure(r.failure), enum_or_none(pb.Resolution, r.resolution, m.Resolution), r.resolved_by, r.resolution_note))


def list_open_stakes(client: str, older_than_seconds: int, limit: int) -> Spec[m.OpenStakes]:
    request = pb.ListOpenStakesRequest(client=client, older_than_seconds=older_than_seconds, limit=limit)
    return Spec("ListOpenStakes", request, lambda r: m.OpenStakes(
        tuple(m.OpenStake(transaction(s.stake), s.age_seconds) for s in r.stakes),
        tuple(m.OpenStakeTotal(t.currency, t.count, Decimal(t.amount)) for t in r.totals)))


def system_balances(client: str) -> Spec[list[m.SystemBalance]]:
    return Spec("GetSystemBalances", pb.GetSystemBalancesRequest(client=client), lambda r: [
        m.SystemBalance(b.currency, b.kind, Decimal(b.balance)) for b in r.balances])


def list_audit(client: str, limit: int) -> Spec[list[m.AuditEntry]]:
    return Spec("ListAuditEntries", pb.ListAuditEntriesRequest(client=client, limit=limit), lambda r: [
        audit_entry(a) for a in r.entries])


def list_clients() -> Spec[m.ClientList]:
    return Spec("ListClients", pb.ListClientsRequest(), lambda r: m.ClientList(tuple(r.clients), r.label))
