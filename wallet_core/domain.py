"""The ledger's vocabulary and rules, as plain Python with no I/O.

A movement is a transaction of entries that sum to zero (one currency per transaction).
Who pays whom for each purpose lives in `postings`; how a repeated transaction id is judged
lives in `fingerprint`. The storage adapter and the service apply these, nothing else decides.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from wallet_core.errors import InvalidArgument

MAX_ID_LENGTH = 128
MAX_REFERENCE_LENGTH = 256


class Purpose(enum.StrEnum):
    STAKE = "stake"
    WITHDRAWAL = "withdrawal"
    PAYOUT = "payout"
    DEPOSIT = "deposit"
    ADJUSTMENT = "adjustment"
    CANCEL = "cancel"


DEBIT_PURPOSES = frozenset({Purpose.STAKE, Purpose.WITHDRAWAL})
CREDIT_PURPOSES = frozenset({Purpose.PAYOUT, Purpose.DEPOSIT, Purpose.ADJUSTMENT})


class TxStatus(enum.StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    TOMBSTONE = "tombstone"


class StakeState(enum.StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


class AccountKind(enum.StrEnum):
    USER = "user"
    IN_PLAY = "in_play"
    HOUSE = "house"
    CASHIER = "cashier"


SYSTEM_KINDS = (AccountKind.IN_PLAY, AccountKind.HOUSE, AccountKind.CASHIER)


class CancelOutcome(enum.StrEnum):
    REVERSED = "reversed"
    TOMBSTONED = "tombstoned"
    NOT_APPLIED = "not_applied"


class FenceOutcome(enum.StrEnum):
    """What a fence found for one transaction id. It never moves money."""

    FENCED = "fenced"  # never seen before (tombstoned now) or tombstoned earlier: it can never be applied
    APPLIED = "applied"  # it was applied (money moved); left exactly as it is
    REFUSED = "refused"  # a debit with that id was refused by the ledger; it can never be applied


@dataclass(frozen=True)
class AccountKey:
    """A user wallet: one per (client, user id, currency)."""

    client: str
    user_id: str
    currency: str

    def validate(self) -> None:
        check_identifier("account.client", self.client)
        check_identifier("account.user_id", self.user_id)
        if not self.currency:
            raise InvalidArgument("account.currency is required")


@dataclass(frozen=True)
class DebitItem:
    transaction_id: str
    account: AccountKey
    amount: str  # decimal string, parsed against the account's currency
    purpose: Purpose
    reference: str = ""


@dataclass(frozen=True)
class CreditCommand:
    transaction_id: str
    account: AccountKey
    amount: str
    purpose: Purpose
    settles_transaction_id: str = ""
    reference: str = ""


# ---- views returned by the service (amounts already formatted as decimal strings) ----


@dataclass(frozen=True)
class AccountView:
    key: AccountKey
    balance: str
    status: AccountStatus
    created_at: datetime


@dataclass(frozen=True)
class TransactionView:
    transaction_id: str
    account: AccountKey
    purpose: Purpose
    amount: str
    balance_after: str
    status: TxStatus
    reference: str
    settles_transaction_id: str
    stake_state: StakeState | None
    created_at: datetime


@dataclass(frozen=True)
class DebitResult:
    transactions: list[TransactionView]
    replayed: bool


@dataclass(frozen=True)
class CreditResult:
    transaction: TransactionView
    replayed: bool


@dataclass(frozen=True)
class CancelResult:
    outcome: CancelOutcome
    transaction: TransactionView
    replayed: bool


@dataclass(frozen=True)
class FencedId:
    transaction_id: str
    outcome: FenceOutcome
    transaction: TransactionView  # the tombstone, the applied transaction, or the refused debit
    reason: str  # for REFUSED: the stable reason of the refusal (e.g. "INSUFFICIENT_FUNDS")
    replayed: bool  # FENCED: the tombstone already existed


@dataclass(frozen=True)
class FenceResult:
    results: list[FencedId]  # in the order of the request's ids


@dataclass(frozen=True)
class TransactionPage:
    transactions: list[TransactionView]
    next_page_token: str


@dataclass(frozen=True)
class SettlementFailurePage:
    failures: list[SettlementFailureView]
    next_page_token: str


@dataclass(frozen=True)
class SettlementFailureView:
    client: str
    transaction_id: str
    settles_transaction_id: str
    account: AccountKey
    amount: str
    reason: str
    message: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


# ---- rules ----


def check_identifier(name: str, value: object, *, max_length: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > max_length:
        raise InvalidArgument(f"{name} is longer than {max_length} characters")
    if not value.isprintable():
        raise InvalidArgument(f"{name} contains control characters")
    return value


def check_reference(value: str) -> str:
    if len(value) > MAX_REFERENCE_LENGTH:
        raise InvalidArgument(f"reference is longer than {MAX_REFERENCE_LENGTH} characters")
    return value


@dataclass(frozen=True)
class Posting:
    """One leg of a transaction: `amount` minor units added to the account of `kind`."""

    kind: AccountKind
    amount: int


def postings(purpose: Purpose, amount: int, *, stake_amount: int = 0) -> list[Posting]:
    """The entries of a movement, as (account kind, signed amount); they always sum to zero.

    stake debit: user -> in_play; withdrawal: user -> cashier; deposit: cashier -> user;
    adjustment: house -> user; cancel of stake S: in_play -> user S;
    payout P of stake S: in_play -> house S, house -> user P.
    """
    user, in_play, house, cashier = AccountKind.USER, AccountKind.IN_PLAY, AccountKind.HOUSE, AccountKind.CASHIER
    match purpose:
        case Purpose.STAKE:
            legs = [Posting(user, -amount), Posting(in_play, amount)]
        case Purpose.WITHDRAWAL:
            legs = [Posting(user, -amount), Posting(cashier, amount)]
        case Purpose.DEPOSIT:
            legs = [Posting(cashier, -amount), Posting(user, amount)]
        case Purpose.ADJUSTMENT:
            legs = [Posting(house, -amount), Posting(user, amount)]
        case Purpose.CANCEL:
            legs = [Posting(in_play, -amount), Posting(user, amount)]
        case Purpose.PAYOUT:
            legs = [
                Posting(in_play, -stake_amount),
                Posting(house, stake_amount),
                Posting(house, -amount),
                Posting(user, amount),
            ]
    assert sum(p.amount for p in legs) == 0, "postings must sum to zero"
    return legs


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's content, to tell a replay from a conflicting reuse of an id."""
    h = hashlib.sha256()
    for part in parts:
        data = str(part).encode()
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.hexdigest()


def debit_fingerprint(item: DebitItem, amount_minor: int, batch_ids: tuple[str, ...]) -> str:
    a = item.account
    return fingerprint("debit", a.client, a.user_id, a.currency, amount_minor, item.purpose, item.reference, *batch_ids)


def credit_fingerprint(cmd: CreditCommand, amount_minor: int) -> str:
    a = cmd.account
    return fingerprint(
        "credit", a.client, a.user_id, a.currency, amount_minor, cmd.purpose, cmd.settles_transaction_id, cmd.reference
    )


@dataclass
class BalanceSheet:
    """Balances of the accounts one transaction touches, for checking before writing."""

    balances: dict[int, int] = field(default_factory=dict)

    def apply(self, account_id: int, delta: int) -> int:
        self.balances[account_id] = self.balances.get(account_id, 0) + delta
        return self.balances[account_id]
