"""The client's values: frozen dataclasses with `Decimal` money and string enums.

They mirror the messages of protos/wallet/v1/wallet.proto; enum values are the proto names
without their prefix, lower case (PURPOSE_STAKE is Purpose.STAKE == "stake").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from clients.errors import WalletError


class Purpose(enum.StrEnum):
    STAKE = "stake"
    WITHDRAWAL = "withdrawal"
    PAYOUT = "payout"
    DEPOSIT = "deposit"
    ADJUSTMENT = "adjustment"
    CANCEL = "cancel"
    UNSETTLE = "unsettle"
    RESETTLE = "resettle"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


class TransactionStatus(enum.StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    TOMBSTONE = "tombstone"


class StakeState(enum.StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class CancelOutcome(enum.StrEnum):
    REVERSED = "reversed"
    TOMBSTONED = "tombstoned"
    NOT_APPLIED = "not_applied"


class FenceOutcome(enum.StrEnum):
    FENCED = "fenced"
    APPLIED = "applied"
    REFUSED = "refused"


@dataclass(frozen=True)
class AccountRef:
    """A user wallet: one per (client, user id, currency)."""

    client: str
    user_id: str
    currency: str


@dataclass(frozen=True)
class DebitItem:
    transaction_id: str
    account: AccountRef
    amount: str | Decimal | int
    purpose: Purpose
    reference: str = ""


@dataclass(frozen=True)
class Account:
    ref: AccountRef
    balance: Decimal
    status: AccountStatus
    created_at: datetime


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    account: AccountRef
    purpose: Purpose
    amount: Decimal
    balance_after: Decimal | None  # None when nothing moved (a refusal, a tombstone)
    status: TransactionStatus
    reference: str
    settles_transaction_id: str
    stake_state: StakeState | None  # for stakes only
    created_at: datetime


@dataclass(frozen=True)
class DebitResult:
    transactions: tuple[Transaction, ...]
    replayed: bool


@dataclass(frozen=True)
class CreditResult:
    transaction: Transaction
    replayed: bool


@dataclass(frozen=True)
class SettleItem:
    """One payout of `settle_batch`: settles the stake `settles_transaction_id` with `amount` (may be 0).

    `stake_amount`: the stake you believe was taken (refused with StakeAmountMismatch if not);
    `payout_cap`: the most that all applied payouts with this `reference` may total (PayoutCapExceeded)."""

    transaction_id: str
    account: AccountRef
    amount: str | Decimal | int
    settles_transaction_id: str
    reference: str = ""
    stake_amount: str | Decimal | int = ""
    payout_cap: str | Decimal | int = ""


@dataclass(frozen=True)
class SettleResult:
    """What became of one item: settled (`transaction`, now or earlier when `replayed`) or `error`."""

    transaction_id: str
    transaction: Transaction | None
    replayed: bool
    error: WalletError | None

    @property
    def settled(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CancelResult:
    outcome: CancelOutcome
    transaction: Transaction
    replayed: bool


@dataclass(frozen=True)
class FencedId:
    """What a Fence found for one id: FENCED and REFUSED can never be applied; APPLIED was, and stays."""

    transaction_id: str
    outcome: FenceOutcome
    transaction: Transaction
    reason: str  # REFUSED: the refusal's reason, e.g. "INSUFFICIENT_FUNDS"
    replayed: bool


@dataclass(frozen=True)
class FenceResult:
    results: tuple[FencedId, ...]


@dataclass(frozen=True)
class TransactionPage:
    transactions: tuple[Transaction, ...]
    next_page_token: str


@dataclass(frozen=True)
class SettlementFailurePage:
    failures: tuple[SettlementFailure, ...]
    next_page_token: str  # empty on the last page


@dataclass(frozen=True)
class SettlementFailure:
    client: str
    transaction_id: str
    settles_transaction_id: str
    account: AccountRef
    amount: str  # as it was sent, which may not be a valid amount
    reason: str
    message: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


# ---- settlement corrections and the operator's side


class ClawbackPolicy(enum.StrEnum):
    REFUSE = "refuse"  # refuse a clawback the wallet cannot cover (INSUFFICIENT_FUNDS, kept for operators)
    DEBT = "debt"  # take what the wallet holds, record the rest as the player's debt


class Resolution(enum.StrEnum):
    SETTLED = "settled"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


@dataclass(frozen=True)
class CorrectionResult:
    transaction: Transaction  # purpose UNSETTLE or RESETTLE
    replayed: bool
    previous_payout: Decimal | None  # None on a replay
    taken: Decimal
    debt_added: Decimal
    debt_repaid: Decimal


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    client: str
    actor: str
    action: str
    transaction_id: str
    target: str
    reason: str
    outcome: str


@dataclass(frozen=True)
class TransactionLookup:
    transaction: Transaction | None
    related: tuple[Transaction, ...]
    failures: tuple[SettlementFailure, ...]
    audit: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class ResolvedFailure:
    failure: SettlementFailure
    resolution: Resolution | None
    resolved_by: str
    resolution_note: str


@dataclass(frozen=True)
class OpenStake:
    stake: Transaction
    age_seconds: int


@dataclass(frozen=True)
class OpenStakeTotal:
    currency: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class OpenStakes:
    stakes: tuple[OpenStake, ...]
    totals: tuple[OpenStakeTotal, ...]


@dataclass(frozen=True)
class SystemBalance:
    currency: str
    kind: str  # in_play, house, cashier, receivable
    balance: Decimal


@dataclass(frozen=True)
class ClientList:
    clients: tuple[str, ...]
    label: str  # the token's label in the audit trail
