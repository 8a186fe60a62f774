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
    UNSETTLE = "unsettle"  # reverses a settlement: the payout clawed back, the stake open again
    RESETTLE = "resettle"  # replaces a settlement's payout with another one, the stake staying settled


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
    RECEIVABLE = "receivable"  # what players owe after a clawback took more than their wallet held (<= 0)


SYSTEM_KINDS = (AccountKind.IN_PLAY, AccountKind.HOUSE, AccountKind.CASHIER, AccountKind.RECEIVABLE)


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
        canonical_id("account.client", self.client)
        canonical_id("account.user_id", self.user_id)
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


@dataclass(frozen=True)
class SettleItem:
    """One payout of a SettleBatch: a PAYOUT credit and what the caller says about it.

    `stake_amount`: the stake the caller believes was taken ("" = not checked); `payout_cap`:
    the most all applied payouts of the client with the command's reference (in its currency)
    may total ("" = no cap). Both are decimal strings in the account's currency."""

    command: CreditCommand
    stake_amount: str = ""
    payout_cap: str = ""


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
    resolution: str = ""  # settled, resolved, dismissed (Resolution); "" while open
    resolved_by: str = ""
    resolution_note: str = ""


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
        case Purpose.UNSETTLE | Purpose.RESETTLE:  # with the wallet covering it; see correction_postings
            new_payout = None if purpose == Purpose.UNSETTLE else amount
            old_payout = amount if purpose == Purpose.UNSETTLE else 0
            legs = correction_postings(stake_amount=stake_amount, old_payout=old_payout, new_payout=new_payout,
                                       user_legs=[Posting(user, (new_payout or 0) - old_payout)])
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


# ---- settlement corrections (unsettle, resettle), clawback and player debt


class ClawbackPolicy(enum.StrEnum):
    """What a correction does when it must take back more than the wallet holds (docs/decisions.md).

    REFUSE: the correction is refused with INSUFFICIENT_FUNDS and kept in the operator queue.
    DEBT: what the wallet holds is taken and the rest is recorded as the player's debt (the
    wallet's `debt`, mirrored by the client's receivable account); later credits pay it off first.
    """

    REFUSE = "refuse"
    DEBT = "debt"


@dataclass(frozen=True)
class AuditNote:
    """Who asked for an operator action and why; written with the action's money movement."""

    actor: str
    action: str
    reason: str


@dataclass(frozen=True)
class CorrectionResult:
    transaction: TransactionView  # the correcting transaction (purpose UNSETTLE or RESETTLE)
    replayed: bool
    previous_payout: str  # the payout the correction replaced or reversed
    taken: str  # taken back from the wallet's balance
    debt_added: str  # recorded as the player's debt (DEBT policy)
    debt_repaid: str  # debt paid off by the correction (a resettle that raised the payout)


def user_movement(balance: int, debt: int, delta: int, policy: ClawbackPolicy) -> tuple[list[Posting], int, int]:
    """The user-side legs of moving `delta` (signed) into a wallet of `balance` owing `debt`.

    Money in pays the debt off first (RECEIVABLE leg), the rest reaches the balance. Money out
    comes from the balance; what the balance cannot cover becomes debt under the DEBT policy and
    is refused (InsufficientFunds) under REFUSE. Returns (legs, taken from the balance, debt added);
    the legs sum to `delta`.
    """
    user, receivable = AccountKind.USER, AccountKind.RECEIVABLE
    if delta >= 0:
        repaid = min(debt, delta)
        return _nonzero([Posting(user, delta - repaid), Posting(receivable, repaid)]), 0, -repaid
    owed = -delta
    taken = min(balance, owed)
    short = owed - taken
    if short and policy == ClawbackPolicy.REFUSE:
        from wallet_core.errors import InsufficientFunds

        raise InsufficientFunds(f"the wallet holds {balance} minor units, the clawback needs {owed}")
    return _nonzero([Posting(user, -taken), Posting(receivable, -short)]), taken, short


def _nonzero(legs: list[Posting]) -> list[Posting]:
    return [leg for leg in legs if leg.amount]


def repay_first(legs: list[Posting], debt: int) -> tuple[list[Posting], int]:
    """A credit's legs with what the wallet owes paid off first: (legs, repaid). Legs still sum to zero."""
    if debt <= 0:
        return legs, 0
    out: list[Posting] = []
    repaid = 0
    for leg in legs:
        if leg.kind == AccountKind.USER and leg.amount > 0 and repaid < debt:
            part = min(debt - repaid, leg.amount)
            repaid += part
            out += [Posting(AccountKind.USER, leg.amount - part), Posting(AccountKind.RECEIVABLE, part)]
        else:
            out.append(leg)
    return out, repaid


def correction_postings(
    *, stake_amount: int, old_payout: int, new_payout: int | None, user_legs: list[Posting]
) -> list[Posting]:
    """The entries of a correction of a settled stake (user legs from `user_movement`).

    unsettle (new_payout None): the house takes the payout back (user legs sum to -old_payout)
    and gives the stake back to in_play (the stake is open again): house +P, house -S, in_play +S.
    resettle: the house takes the old payout back and pays the new one: house +P_old, house -P_new.
    """
    house, in_play = AccountKind.HOUSE, AccountKind.IN_PLAY
    legs = [*user_legs, Posting(house, old_payout)]
    if new_payout is None:
        legs += [Posting(house, -stake_amount), Posting(in_play, stake_amount)]
    else:
        legs.append(Posting(house, -new_payout))
    assert sum(p.amount for p in legs) == 0, "postings must sum to zero"
    return legs


def canonical_id(name: str, value: object) -> str:
    """A user or client id as the ledger keeps it: refused when it would name a wallet betflex can
    never reach (surrounding spaces, a number with leading zeros). See docs/decisions.md."""
    text = check_identifier(name, value)
    if text != text.strip():
        raise InvalidArgument(f"{name} {text!r} has leading or trailing spaces; the ledger does not trim ids")
    if text.isascii() and text.isdigit() and len(text) > 1 and text.startswith("0"):
        raise InvalidArgument(f"{name} {text!r} is a number with leading zeros; write it as {text.lstrip('0') or '0'}")
    return text


# ---- operator views


class Resolution(enum.StrEnum):
    """How an entry of the failed-settlement queue was closed."""

    SETTLED = "settled"  # a later call with the same id succeeded
    RESOLVED = "resolved"  # an operator fixed it by other means (e.g. `wallet settle` with another id)
    DISMISSED = "dismissed"  # an operator decided nothing is owed


@dataclass(frozen=True)
class AuditView:
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
    """Everything the ledger knows about one transaction id: for a stake, its whole story."""

    transaction: TransactionView | None  # None when the id was never used (failures may still name it)
    related: list[TransactionView]  # settlements, cancels and corrections of the stake, oldest first
    failures: list[SettlementFailureView]  # refused payouts and corrections naming it
    audit: list[AuditView]  # operator actions on it


@dataclass(frozen=True)
class OpenStakeView:
    transaction: TransactionView
    age_seconds: int


@dataclass(frozen=True)
class OpenStakeTotal:
    client: str
    currency: str
    count: int
    amount: str


@dataclass(frozen=True)
class OpenStakes:
    stakes: list[OpenStakeView]  # oldest first, at most the limit
    totals: list[OpenStakeTotal]  # over every open stake older than the age, per currency


@dataclass(frozen=True)
class SystemBalanceView:
    client: str
    currency: str
    kind: AccountKind
    balance: str
