"""Proto messages ⇄ domain values. Enum values map by name: PURPOSE_STAKE ⇄ Purpose.STAKE."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from clients.wallet.v1 import wallet_pb2 as pb
from wallet_core import domain
from wallet_core.errors import InvalidArgument, WalletError

E = TypeVar("E", bound=enum.Enum)


def _prefix(proto_enum: EnumTypeWrapper) -> str:
    # e.g. "PURPOSE_" from PURPOSE_UNSPECIFIED
    return proto_enum.Name(0).removesuffix("UNSPECIFIED")


def enum_in(proto_enum: EnumTypeWrapper, value: int, domain_enum: type[E], field: str) -> E:
    try:
        name = proto_enum.Name(value).removeprefix(_prefix(proto_enum))
        return domain_enum[name]
    except (ValueError, KeyError):
        raise InvalidArgument(f"{field} is missing or not one of the allowed values") from None


def enum_out(proto_enum: EnumTypeWrapper, value: enum.Enum | None) -> str:
    """The proto enum value's name (e.g. PURPOSE_STAKE): the generated constructors take it as the value."""
    if value is None:
        return proto_enum.Name(0)
    return _prefix(proto_enum) + value.name


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def key_in(ref: pb.AccountRef) -> domain.AccountKey:
    return domain.AccountKey(ref.client, ref.user_id, ref.currency)


def key_out(key: domain.AccountKey) -> pb.AccountRef:
    return pb.AccountRef(client=key.client, user_id=key.user_id, currency=key.currency)


def account_out(view: domain.AccountView) -> pb.Account:
    return pb.Account(
        ref=key_out(view.key), balance=view.balance, status=enum_out(pb.AccountStatus, view.status),
        created_at=timestamp(view.created_at),
    )


def transaction_out(view: domain.TransactionView) -> pb.Transaction:
    return pb.Transaction(
        transaction_id=view.transaction_id, account=key_out(view.account),
        purpose=enum_out(pb.Purpose, view.purpose), amount=view.amount, balance_after=view.balance_after,
        status=enum_out(pb.TransactionStatus, view.status), reference=view.reference,
        settles_transaction_id=view.settles_transaction_id, stake_state=enum_out(pb.StakeState, view.stake_state),
        created_at=timestamp(view.created_at),
    )


def debit_items_in(request: pb.DebitRequest) -> list[domain.DebitItem]:
    return [
        domain.DebitItem(
            transaction_id=item.transaction_id, account=key_in(item.account), amount=item.amount,
            purpose=enum_in(pb.Purpose, item.purpose, domain.Purpose, f"items[{n}].purpose"), reference=item.reference,
        )
        for n, item in enumerate(request.items)
    ]


def credit_in(request: pb.CreditRequest) -> domain.CreditCommand:
    return domain.CreditCommand(
        transaction_id=request.transaction_id, account=key_in(request.account), amount=request.amount,
        purpose=enum_in(pb.Purpose, request.purpose, domain.Purpose, "purpose"),
        settles_transaction_id=request.settles_transaction_id, reference=request.reference,
    )


def settle_items_in(request: pb.SettleBatchRequest) -> list[domain.SettleItem]:
    return [
        domain.SettleItem(
            domain.CreditCommand(
                transaction_id=item.transaction_id, account=key_in(item.account), amount=item.amount,
                purpose=domain.Purpose.PAYOUT, settles_transaction_id=item.settles_transaction_id,
                reference=item.reference,
            ),
            stake_amount=item.stake_amount, payout_cap=item.payout_cap,
        )
        for item in request.items
    ]


def settle_out(
    request: pb.SettleBatchRequest, outcomes: list[domain.CreditResult | WalletError]
) -> pb.SettleBatchResponse:
    results = []
    for item, outcome in zip(request.items, outcomes, strict=True):
        if isinstance(outcome, WalletError):
            results.append(pb.SettleResult(
                transaction_id=item.transaction_id, reason=outcome.reason, message=outcome.message))
        else:
            results.append(pb.SettleResult(
                transaction_id=item.transaction_id, transaction=transaction_out(outcome.transaction),
                replayed=outcome.replayed))
    return pb.SettleBatchResponse(results=results)


def failure_out(view: domain.SettlementFailureView) -> pb.SettlementFailure:
    return pb.SettlementFailure(
        client=view.client, transaction_id=view.transaction_id, settles_transaction_id=view.settles_transaction_id,
        account=key_out(view.account), amount=view.amount, reason=view.reason, message=view.message,
        attempts=view.attempts, first_seen=timestamp(view.first_seen), last_seen=timestamp(view.last_seen),
        resolved_at=timestamp(view.resolved_at),
    )


def fence_out(result: domain.FenceResult) -> pb.FenceResponse:
    return pb.FenceResponse(results=[
        pb.FencedId(
            transaction_id=r.transaction_id, outcome=enum_out(pb.FenceOutcome, r.outcome),
            transaction=transaction_out(r.transaction), reason=r.reason, replayed=r.replayed,
        )
        for r in result.results
    ])


def clawback_in(value: int) -> domain.ClawbackPolicy | None:
    """UNSPECIFIED: None, the client's configured policy."""
    if value == 0:
        return None
    return enum_in(pb.ClawbackPolicy, value, domain.ClawbackPolicy, "clawback")


def correction_out(result: domain.CorrectionResult) -> pb.CorrectionResponse:
    return pb.CorrectionResponse(
        transaction=transaction_out(result.transaction), replayed=result.replayed,
        previous_payout=result.previous_payout, taken=result.taken, debt_added=result.debt_added,
        debt_repaid=result.debt_repaid,
    )


def audit_out(view: domain.AuditView) -> pb.AuditEntry:
    return pb.AuditEntry(
        id=view.id, at=timestamp(view.at), client=view.client, actor=view.actor, action=view.action,
        transaction_id=view.transaction_id, target=view.target, reason=view.reason, outcome=view.outcome,
    )


def lookup_out(found: domain.TransactionLookup) -> pb.LookupTransactionResponse:
    return pb.LookupTransactionResponse(
        transaction=transaction_out(found.transaction) if found.transaction is not None else None,
        related=[transaction_out(t) for t in found.related],
        failures=[failure_out(f) for f in found.failures],
        audit=[audit_out(a) for a in found.audit],
    )
