"""The ledger's rules, applied to an in-memory picture of the rows a batch of calls touches.

A `Book` is loaded with the wallets (locked), transactions and stakes that a batch of Debit,
Credit and Cancel calls names; each call is then judged and applied here, one after the
other, in plain Python. A call either changes the book completely or not at all: every check
runs before the first change. What the calls changed is left in the book's pending lists for
the storage adapter to write in one database transaction. A failing call never affects the
others; a later call in the same batch sees an earlier one's effect (a replay of an id that
was first used earlier in the batch is a replay).

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import overload

from wallet_core import errors
from wallet_core.currencies import Currency, CurrencyRegistry
from wallet_core.domain import (
    AccountKey,
    AccountKind,
    AccountStatus,
    AuditNote,
    CancelOutcome,
    CancelResult,
    ClawbackPolicy,
    CorrectionResult,
    CreditCommand,
    CreditResult,
    DebitItem,
    DebitResult,
    FencedId,
    FenceOutcome,
    FenceResult,
    Posting,
    Purpose,
    StakeState,
    TransactionView,
    TxStatus,
    correction_postings,
    fingerprint,
    postings,
    repay_first,
    user_movement,
)
from wallet_core.money import MAX_MINOR

# ---------------------------------------------------------------- calls


@dataclass(frozen=True)
class DebitCall:
    items: list[tuple[DebitItem, Currency, int]]  # validated, with the amount in minor units
    hashes: list[str]
    audit: AuditNote | None = None

    @property
    def client(self) -> str:
        return self.items[0][0].account.client


@dataclass(frozen=True)
class CreditCall:
    command: CreditCommand
    currency: Currency
    minor: int
    request_hash: str
    audit: AuditNote | None = None
    # SettleBatch only: the stake amount the caller expects, and the cap of the payouts with the
    # command's reference (both in minor units; None = not checked). Not part of request_hash:
    # a payout already applied replays whatever the caller now says about it.
    stake_minor: int | None = None
    cap_minor: int | None = None

    @property
    def group(self) -> tuple[str, str, str] | None:
        """The payouts this one's cap counts: (client, currency, reference), or None without a cap."""
        if self.cap_minor is None or not self.command.reference:
            return None
        key = self.command.account
        return key.client, key.currency, self.command.reference


@dataclass(frozen=True)
class SettleCall:
    """Many payouts, each judged on its own, in one database transaction (SettleBatch).

    An item refused while it was validated (a bad amount, ...) keeps its place as that refusal."""

    items: list[CreditCall | errors.WalletError]

    def credits(self) -> list[CreditCall]:
        return [item for item in self.items if isinstance(item, CreditCall)]


@dataclass(frozen=True)
class CancelCall:
    client: str
    transaction_id: str
    reference: str
    audit: AuditNote | None = None


@dataclass(frozen=True)
class FenceCall:
    client: str
    transaction_ids: tuple[str, ...]
    reference: str


@dataclass(frozen=True)
class CorrectionCall:
    """Unsettle (new_payout is None) or resettle (new_payout set, as the caller wrote it) a settled stake."""

    client: str
    transaction_id: str  # the correction's own id: it is idempotent by it
    stake_id: str  # the settled stake's transaction id
    new_payout: str | None
    reference: str
    policy: ClawbackPolicy
    audit: AuditNote | None = None


# one call, one outcome (SettleCall, a batch of payouts, answers one outcome per payout)
SingleCall = DebitCall | CreditCall | CancelCall | FenceCall | CorrectionCall
Call = SingleCall | SettleCall
SettleOutcome = CreditResult | errors.WalletError
Outcome = (
    DebitResult | CreditResult | CancelResult | FenceResult | CorrectionResult | list[SettleOutcome]
    | errors.WalletError
)


# ---------------------------------------------------------------- rows in memory


@dataclass(eq=False)
class Wallet:
    id: int
    key: AccountKey
    balance: int
    status: str
    loaded_balance: int
    debt: int = 0  # what the player owes after a clawback (minor units, >= 0); balance is 0 while it is not
    loaded_debt: int = 0


@dataclass(eq=False)
class Tx:
    """A row of `transactions`: loaded (pk set) or new in this batch (pk set once written)."""

    client: str
    transaction_id: str | None
    purpose: str
    status: str
    account_id: int | None
    user_id: str
    currency: str
    amount: int
    balance_after: int | None
    reference: str
    request_hash: str
    created_at: datetime
    target_id: str | None = None
    target: Tx | None = None
    target_pk: int | None = None
    error_reason: str | None = None
    error_message: str | None = None
    pk: int | None = None
    stake: Stake | None = None

    def row(self) -> dict[str, object]:
        return {
            "client": self.client, "transaction_id": self.transaction_id, "purpose": self.purpose,
            "status": self.status, "account_id": self.account_id, "user_id": self.user_id,
            "currency": self.currency, "amount": self.amount, "balance_after": self.balance_after,
            "reference": self.reference, "target_id": self.target_id,
            "target_pk": self.target.pk if self.target is not None else self.target_pk,
            "request_hash": self.request_hash, "error_reason": self.error_reason,
            "error_message": self.error_message, "created_at": self.created_at,
        }


@dataclass(eq=False)
class Stake:
    tx: Tx
    client: str
    currency: str
    account_id: int
    amount: int
    state: str
    closed_by: Tx | None = None
    is_new: bool = False


@dataclass
class Failure:
    """A refused payout, for the operator queue."""

    command: CreditCommand
    error: errors.WalletError


# ---------------------------------------------------------------- the book


@dataclass
class Book:
    currencies: CurrencyRegistry
    now: datetime
    system_accounts: Callable[[str, str], dict[AccountKind, int]]
    wallets: dict[AccountKey, Wallet] = field(default_factory=dict)
    txs: dict[tuple[str, str], Tx] = field(default_factory=dict)

    # what the batch changed, for the storage adapter
    new_txs: list[Tx] = field(default_factory=list)
    new_entries: list[tuple[Tx, int, int]] = field(default_factory=list)  # (tx, account id, amount)
    new_stakes: list[Stake] = field(default_factory=list)
    closed_stakes: list[Stake] = field(default_factory=list)
    system_deltas: dict[int, int] = field(default_factory=dict)
    # system account id -> balance as loaded (repository.load), for the storage range rule
    system_balances: dict[int, int] = field(default_factory=dict)
    # stakes a correction changed, with the transaction that closed them as loaded (optimistic update)
    corrected_stakes: list[tuple[Stake, Tx]] = field(default_factory=list)
    resolved_failures: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    # (client, currency, reference) -> total of its applied payouts, for the groups of the batch's caps
    group_paid: dict[tuple[str, str, str], int] = field(default_factory=dict)

    # each call's own result (or its refusal): callers need no cast
    @overload
    def apply(self, call: DebitCall) -> DebitResult | errors.WalletError: ...
    @overload
    def apply(self, call: CreditCall) -> CreditResult | errors.WalletError: ...
    @overload
    def apply(self, call: CancelCall) -> CancelResult | errors.WalletError: ...
    @overload
    def apply(self, call: FenceCall) -> FenceResult | errors.WalletError: ...
    @overload
    def apply(self, call: CorrectionCall) -> CorrectionResult | errors.WalletError: ...
    @overload
    def apply(self, call: SettleCall) -> list[SettleOutcome]: ...
    @overload
    def apply(self, call: Call) -> Outcome: ...

    def apply(self, call: Call) -> Outcome:
        if isinstance(call, SettleCall):
            return self.settle(call)
        outcome = self._apply(call)
        note = getattr(call, "audit", None)
        if note is not None:
            self.audit.append(audit_row(self.now, call, note, outcome))
        return outcome

    def _apply(self, call: SingleCall) -> Outcome:
        try:
            if isinstance(call, DebitCall):
                return self.debit(call)
            if isinstance(call, CreditCall):
                return self.credit(call)
            if isinstance(call, FenceCall):
                return self.fence(call)
            if isinstance(call, CorrectionCall):
                return self.correct(call)
            return self.cancel(call)
        except errors.WalletError as refusal:
            if isinstance(call, CreditCall) and call.command.purpose == Purpose.PAYOUT:
                self.failures.append(Failure(call.command, refusal))
            if isinstance(call, CorrectionCall) and isinstance(refusal, errors.InsufficientFunds):
                self.failures.append(self._correction_failure(call, refusal))
            return refusal

    def changed_wallets(self) -> list[Wallet]:
        return [w for w in self.wallets.values() if w.balance != w.loaded_balance or w.debt != w.loaded_debt]

    # ------------------------------------------------------------ debit

    def debit(self, call: DebitCall) -> DebitResult:
        client = call.client
        ids = [item.transaction_id for item, _, _ in call.items]
        existing = {i: self.txs[(client, i)] for i in ids if (client, i) in self.txs}
        if existing:
            return self._replay_debit(ids, call.hashes, existing)

        needed: dict[AccountKey, int] = {}
        for item, _, minor in call.items:
            needed[item.account] = needed.get(item.account, 0) + minor
        refusal = self._debit_refusal(needed) or self._range_refusal(
            [(self.wallets[item.account], postings(item.purpose, minor)) for item, _, minor in call.items]
        )
        if refusal is not None:
            for (item, _, minor), h in zip(call.items, call.hashes, strict=True):
                wallet = self.wallets.get(item.account)
                self._add_tx(Tx(
                    client=client, transaction_id=item.transaction_id, purpose=item.purpose,
                    status=TxStatus.REFUSED, account_id=wallet.id if wallet else None, user_id=item.account.user_id,
                    currency=item.account.currency, amount=minor, balance_after=wallet.balance if wallet else None,
                    reference=item.reference, request_hash=h, created_at=self.now,
                    error_reason=refusal.reason, error_message=refusal.message[:512],
                ))
            raise refusal

        views = []
        for (item, _, minor), h in zip(call.items, call.hashes, strict=True):
            wallet = self.wallets[item.account]
            wallet.balance -= minor
            tx = self._add_tx(Tx(
                client=client, transaction_id=item.transaction_id, purpose=item.purpose, status=TxStatus.APPLIED,
                account_id=wallet.id, user_id=item.account.user_id, currency=item.account.currency, amount=minor,
                balance_after=wallet.balance, reference=item.reference, request_hash=h, created_at=self.now,
            ))
            self._post(tx, wallet, postings(item.purpose, minor))
            if item.purpose == Purpose.STAKE:
                tx.stake = Stake(tx, client, item.account.currency, wallet.id, minor, StakeState.OPEN, is_new=True)
                self.new_stakes.append(tx.stake)
            views.append(self.view(tx))
        return DebitResult(views, replayed=False)

    def _replay_debit(self, ids: list[str], hashes: list[str], existing: dict[str, Tx]) -> DebitResult:
        same = len(existing) == len(ids) and all(
            existing[i].request_hash == h and existing[i].status != TxStatus.TOMBSTONE
            for i, h in zip(ids, hashes, strict=True)
        )
        if same:
            first = existing[ids[0]]
            if first.status == TxStatus.REFUSED:
                error_class = errors.BY_REASON.get(first.error_reason or "", errors.WalletError)
                raise error_class(first.error_message or first.error_reason or "refused")
            return DebitResult([self.view(existing[i]) for i in ids], replayed=True)
        tombstoned = [i for i in ids if i in existing and existing[i].status == TxStatus.TOMBSTONE]
        if tombstoned:
            raise errors.StakeCancelled(
                f"transaction {tombstoned[0]!r} was cancelled before this debit arrived; nothing was taken",
                transaction_id=tombstoned[0],
            )
        clash = next(i for i in ids if i in existing)
        raise errors.IdempotencyConflict(
            f"transaction id {clash!r} was already used for a different request; nothing was changed",
            transaction_id=clash,
        )

    def _debit_refusal(self, needed: dict[AccountKey, int]) -> errors.WalletError | None:
        for key in sorted(needed, key=lambda k: (k.user_id, k.currency)):
            wallet = self.wallets.get(key)
            if wallet is None:
                return not_found(key)
            if wallet.status == AccountStatus.BLOCKED:
                return errors.AccountBlocked(f"wallet {describe(key)} is blocked", user_id=key.user_id)
            if wallet.balance < needed[key]:
                fmt = self.currencies.get(key.currency).format
                return errors.InsufficientFunds(
                    # no balance in the text: it is stored and replayed verbatim, when the balance has moved on
                    f"wallet {describe(key)} has insufficient funds for a debit of {fmt(needed[key])}",
                    user_id=key.user_id,
                )
        return None

    def _range_refusal(self, moves: list[tuple[Wallet, list[Posting]]]) -> errors.InvalidAmount | None:
        """Refuse movements that would take any balance, a wallet's or a system account's, past the storage range.

        Checked on the balances the movements would leave, before anything changes (DESIGN section 1).
        """
        after: dict[tuple[int, AccountKind], int] = {}
        keys: dict[int, AccountKey] = {}
        for wallet, legs in moves:
            system = self.system_accounts(wallet.key.client, wallet.key.currency)
            for leg in legs:
                account_id = wallet.id if leg.kind == AccountKind.USER else system[leg.kind]
                slot = (account_id, leg.kind)
                if slot not in after:
                    after[slot] = wallet.balance if leg.kind == AccountKind.USER else (
                        self.system_balances[account_id] + self.system_deltas.get(account_id, 0))
                after[slot] += leg.amount
                keys[account_id] = wallet.key
        for (account_id, kind), balance in after.items():
            if abs(balance) > MAX_MINOR:
                key = keys[account_id]
                fmt = self.currencies.get(key.currency).format
                where = f"wallet {describe(key)}" if kind == AccountKind.USER else (
                    f"the {kind.value} account of {key.client}/{key.currency}")
                return errors.InvalidAmount(
                    f"{where} would hold {fmt(balance)} {key.currency}, beyond the largest balance the ledger "
                    f"holds ({fmt(MAX_MINOR)} either way); nothing was changed",
                    currency=key.currency,
                )
        return None

    # ------------------------------------------------------------ credit

    def credit(self, call: CreditCall) -> CreditResult:
        cmd, key = call.command, call.command.account
        existing = self.txs.get((key.client, cmd.transaction_id))
        if existing is not None:
            if existing.request_hash == call.request_hash and existing.status == TxStatus.APPLIED:
                return CreditResult(self.view(existing), replayed=True)
            raise errors.IdempotencyConflict(
                f"transaction id {cmd.transaction_id!r} was already used for a different request; nothing was changed",
                transaction_id=cmd.transaction_id,
            )
        wallet = self.wallets.get(key)
        stake: Stake | None = None
        if cmd.purpose == Purpose.PAYOUT:
            stake = self._settleable_stake(cmd, wallet)
            self._check_claims(call, stake)
        if wallet is None:
            raise not_found(key)
        if cmd.purpose == Purpose.DEPOSIT and wallet.status == AccountStatus.BLOCKED:
            raise errors.AccountBlocked(f"wallet {describe(key)} is blocked", user_id=key.user_id)
        legs, repaid = repay_first(postings(cmd.purpose, call.minor, stake_amount=stake.amount if stake else 0),
                                   wallet.debt)
        refusal = self._range_refusal([(wallet, legs)])
        if refusal is not None:
            raise refusal

        wallet.balance += call.minor - repaid
        wallet.debt -= repaid
        tx = self._add_tx(Tx(
            client=key.client, transaction_id=cmd.transaction_id, purpose=cmd.purpose, status=TxStatus.APPLIED,
            account_id=wallet.id, user_id=key.user_id, currency=key.currency, amount=call.minor,
            balance_after=wallet.balance, reference=cmd.reference, request_hash=call.request_hash,
            created_at=self.now, target_id=cmd.settles_transaction_id or None,
            target=stake.tx if stake is not None else None,
        ))
        self._post(tx, wallet, legs)
        if stake is not None:
            self._close(stake, StakeState.SETTLED, tx)
            self.resolved_failures.append((key.client, cmd.transaction_id))
            group = (key.client, key.currency, cmd.reference)
            if group in self.group_paid:
                self.group_paid[group] += call.minor
        return CreditResult(self.view(tx), replayed=False)

    def _settleable_stake(self, cmd: CreditCommand, wallet: Wallet | None) -> Stake:
        target = cmd.settles_transaction_id
        tx = self.txs.get((cmd.account.client, target))
        if tx is not None and tx.status == TxStatus.TOMBSTONE:
            raise errors.StakeCancelled(f"stake {target!r} was cancelled before it was placed", stake=target)
        if tx is None or tx.stake is None:
            raise errors.StakeNotFound(f"no stake with transaction id {target!r}", stake=target)
        stake = tx.stake
        if stake.state == StakeState.SETTLED:
            raise errors.AlreadySettled(f"stake {target!r} is already settled by another transaction", stake=target)
        if stake.state == StakeState.CANCELLED:
            raise errors.StakeCancelled(f"stake {target!r} was cancelled; it cannot be settled", stake=target)
        if stake.currency != cmd.account.currency:
            raise errors.CurrencyMismatch(
                f"stake {target!r} is in {stake.currency}, the payout in {cmd.account.currency}", stake=target
            )
        if wallet is None or stake.account_id != wallet.id:
            raise errors.StakeMismatch(f"stake {target!r} belongs to another wallet", stake=target)
        return stake

    # ------------------------------------------------------------ settle (many payouts)

    def settle(self, call: SettleCall) -> list[SettleOutcome]:
        """Each payout on its own, in order; the new payouts of a capped group first judged together."""
        over = self._over_cap(call.items)
        outcomes: list[SettleOutcome] = []
        for n, item in enumerate(call.items):
            if isinstance(item, errors.WalletError):
                outcomes.append(item)
            elif n in over:
                self.failures.append(Failure(item.command, over[n]))
                outcomes.append(over[n])
            else:
                outcome = self.apply(item)
                assert isinstance(outcome, CreditResult | errors.WalletError)
                outcomes.append(outcome)
        return outcomes

    def _over_cap(self, items: list[CreditCall | errors.WalletError]) -> dict[int, errors.PayoutCapExceeded]:
        """The items refused because their group's new payouts, all together, would pass its cap.

        A pool whose payouts betflex asks for exceed its overdraw is wrong as a whole: paying the
        first of its bets in body order and refusing the rest would be arbitrary, so none of its
        new payouts is made (replays of payouts made earlier still replay)."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for n, item in enumerate(items):
            if isinstance(item, CreditCall) and item.group is not None and (
                    item.command.account.client, item.command.transaction_id) not in self.txs:
                groups.setdefault(item.group, []).append(n)
        over: dict[int, errors.PayoutCapExceeded] = {}
        for group, members in groups.items():
            calls = [items[n] for n in members]
            asked = sum(c.minor for c in calls if isinstance(c, CreditCall))
            cap = min(c.cap_minor for c in calls if isinstance(c, CreditCall) and c.cap_minor is not None)
            paid = self.group_paid.get(group, 0)
            if paid + asked > cap:
                refusal = self._cap_refusal(group, cap, paid, asked, len(members))
                over.update((n, refusal) for n in members)
        return over

    def _check_claims(self, call: CreditCall, stake: Stake) -> None:
        """What the caller says about the payout (SettleBatch): the stake it settles, the cap of its group."""
        fmt = self.currencies.get(stake.currency).format
        target = call.command.settles_transaction_id
        if call.stake_minor is not None and call.stake_minor != stake.amount:
            raise errors.StakeAmountMismatch(
                f"stake {target!r} took {fmt(stake.amount)} {stake.currency}; the payout request says the stake "
                f"was {fmt(call.stake_minor)} {stake.currency}; the payout of {call.command.amount} was not made",
                stake=target,
            )
        group = call.group
        if group is not None and call.cap_minor is not None:
            paid = self.group_paid.get(group, 0)
            if paid + call.minor > call.cap_minor:
                raise self._cap_refusal(group, call.cap_minor, paid, call.minor, 1)

    def _cap_refusal(self, group: tuple[str, str, str], cap: int, paid: int, asked: int, count: int
                     ) -> errors.PayoutCapExceeded:
        _, currency, reference = group
        fmt = self.currencies.get(currency).format
        return errors.PayoutCapExceeded(
            f"the payouts of {reference} would total {fmt(paid + asked)} {currency} ({fmt(paid)} paid before, "
            f"{fmt(asked)} asked now by {count} payout(s)), over its cap of {fmt(cap)} {currency}; "
            "none of the new payouts was made",
            reference=reference,
        )

    # ------------------------------------------------------------ cancel

    def cancel(self, call: CancelCall) -> CancelResult:
        target = self.txs.get((call.client, call.transaction_id))
        if target is None:
            tomb = self._tombstone(call.client, call.transaction_id, call.reference)
            return CancelResult(CancelOutcome.TOMBSTONED, self.view(tomb), replayed=False)
        if target.status == TxStatus.TOMBSTONE:
            return CancelResult(CancelOutcome.TOMBSTONED, self.view(target), replayed=True)
        if target.purpose != Purpose.STAKE:
            raise errors.NotCancellable(
                f"transaction {call.transaction_id!r} is a {target.purpose}; only stakes can be cancelled",
                transaction_id=call.transaction_id,
            )
        if target.status == TxStatus.REFUSED:
            return CancelResult(CancelOutcome.NOT_APPLIED, self.view(target), replayed=False)
        stake = target.stake
        assert stake is not None, f"applied stake {call.transaction_id!r} has no stake row"
        if stake.state == StakeState.SETTLED:
            raise errors.AlreadySettled(
                f"stake {call.transaction_id!r} is settled; it cannot be cancelled", stake=call.transaction_id
            )
        if stake.state == StakeState.CANCELLED:
            assert stake.closed_by is not None
            return CancelResult(CancelOutcome.REVERSED, self.view(stake.closed_by), replayed=True)
        key = AccountKey(call.client, target.user_id, target.currency)
        wallet = self.wallets[key]
        legs, repaid = repay_first(postings(Purpose.CANCEL, stake.amount), wallet.debt)
        refusal = self._range_refusal([(wallet, legs)])
        if refusal is not None:
            raise refusal
        wallet.balance += stake.amount - repaid
        wallet.debt -= repaid
        tx = self._add_tx(Tx(
            client=call.client, transaction_id=None, purpose=Purpose.CANCEL, status=TxStatus.APPLIED,
            account_id=wallet.id, user_id=key.user_id, currency=key.currency, amount=stake.amount,
            balance_after=wallet.balance, reference=call.reference,
            request_hash=fingerprint("cancel", call.client, call.transaction_id), created_at=self.now,
            target_id=call.transaction_id, target=stake.tx,
        ))
        self._post(tx, wallet, legs)
        self._close(stake, StakeState.CANCELLED, tx)
        return CancelResult(CancelOutcome.REVERSED, self.view(tx), replayed=False)

    # ------------------------------------------------------------ fence

    def fence(self, call: FenceCall) -> FenceResult:
        """Settle the fate of every id at once, moving no money: an id never seen is tombstoned
        (a Debit with it is refused from now on); an id already used is reported as it stands."""
        results = []
        for transaction_id in call.transaction_ids:
            tx = self.txs.get((call.client, transaction_id))
            if tx is None:
                tomb = self._tombstone(call.client, transaction_id, call.reference)
                results.append(FencedId(transaction_id, FenceOutcome.FENCED, self.view(tomb), "", replayed=False))
            elif tx.status == TxStatus.TOMBSTONE:
                results.append(FencedId(transaction_id, FenceOutcome.FENCED, self.view(tx), "", replayed=True))
            elif tx.status == TxStatus.REFUSED:
                reason = tx.error_reason or errors.WalletError.reason
                results.append(FencedId(transaction_id, FenceOutcome.REFUSED, self.view(tx), reason, replayed=True))
            else:
                results.append(FencedId(transaction_id, FenceOutcome.APPLIED, self.view(tx), "", replayed=True))
        return FenceResult(results)

    # ------------------------------------------------------------ corrections (unsettle, resettle)

    def correct(self, call: CorrectionCall) -> CorrectionResult:
        """Reverse a stake's settlement (the stake is open again) or replace its payout, in one transaction.

        The correction is a new transaction (append-only): the payout is taken back from the wallet
        (what it cannot cover follows the clawback policy), the house gets it back, and either the
        stake returns to in_play (unsettle) or the house pays the new payout (resettle).
        """
        stake_tx = self.txs.get((call.client, call.stake_id))
        currency = self.currencies.get(stake_tx.currency) if stake_tx is not None and stake_tx.currency else None
        new_payout = None
        if call.new_payout is not None:
            if currency is None:  # the stake is unknown: judged below, after the id
                new_payout = 0
            else:
                new_payout = currency.parse(call.new_payout, field="amount")
        kind = Purpose.UNSETTLE if call.new_payout is None else Purpose.RESETTLE
        request_hash = fingerprint(kind, call.client, call.stake_id, new_payout, call.reference)
        existing = self.txs.get((call.client, call.transaction_id))
        if existing is not None:
            if existing.request_hash == request_hash and existing.status == TxStatus.APPLIED:
                # a replay answers with the transaction; what it took and recorded is in its entries
                zero = self.currencies.get(existing.currency).format(0)
                return CorrectionResult(self.view(existing), True, previous_payout="", taken=zero, debt_added=zero,
                                        debt_repaid=zero)
            raise errors.IdempotencyConflict(
                f"transaction id {call.transaction_id!r} was already used for a different request; nothing was changed",
                transaction_id=call.transaction_id,
            )
        if stake_tx is not None and stake_tx.status == TxStatus.TOMBSTONE:
            raise errors.StakeCancelled(
                f"stake {call.stake_id!r} was cancelled before it was placed", stake=call.stake_id)
        if stake_tx is None or stake_tx.stake is None or currency is None:
            raise errors.StakeNotFound(f"no stake with transaction id {call.stake_id!r}", stake=call.stake_id)
        stake = stake_tx.stake
        if stake.state == StakeState.OPEN:
            raise errors.NotSettled(f"stake {call.stake_id!r} is open: there is no settlement to correct",
                                    stake=call.stake_id)
        if stake.state == StakeState.CANCELLED:
            raise errors.StakeCancelled(f"stake {call.stake_id!r} was cancelled; it has no settlement to correct",
                                        stake=call.stake_id)
        closer = stake.closed_by
        assert closer is not None, f"settled stake {call.stake_id!r} has no closing transaction"
        old_payout = closer.amount
        if new_payout is not None and new_payout == old_payout:
            raise errors.InvalidAmount(
                f"stake {call.stake_id!r} is already settled with a payout of {currency.format(old_payout)}; "
                "nothing to correct", currency=currency.code)
        key = AccountKey(call.client, stake_tx.user_id, stake_tx.currency)
        wallet = self.wallets[key]
        delta = (new_payout or 0) - old_payout
        try:
            user_legs, taken, debt_added = user_movement(wallet.balance, wallet.debt, delta, call.policy)
        except errors.InsufficientFunds:
            fmt = currency.format
            raise errors.InsufficientFunds(
                f"wallet {describe(key)} holds {fmt(wallet.balance)}, the clawback of stake {call.stake_id!r} "
                f"needs {fmt(-delta)}; the client's clawback policy is to refuse (nothing was changed)",
                user_id=key.user_id) from None
        legs = correction_postings(stake_amount=stake.amount, old_payout=old_payout, new_payout=new_payout,
                                   user_legs=user_legs)
        if wallet.debt + debt_added > MAX_MINOR:
            raise errors.InvalidAmount(f"the debt of wallet {describe(key)} would pass the storage range",
                                       currency=key.currency)
        refusal = self._range_refusal([(wallet, legs)])
        if refusal is not None:
            raise refusal
        user_delta = sum(leg.amount for leg in user_legs if leg.kind == AccountKind.USER)
        wallet.balance += user_delta
        wallet.debt += debt_added
        tx = self._add_tx(Tx(
            client=call.client, transaction_id=call.transaction_id, purpose=kind, status=TxStatus.APPLIED,
            account_id=wallet.id, user_id=key.user_id, currency=key.currency,
            amount=old_payout if new_payout is None else new_payout, balance_after=wallet.balance,
            reference=call.reference, request_hash=request_hash, created_at=self.now,
            target_id=call.stake_id, target=stake.tx,
        ))
        self._post(tx, wallet, legs)
        previous = closer
        if new_payout is None:
            stake.state = StakeState.OPEN
            stake.closed_by = None
        else:
            stake.closed_by = tx
        if not any(s is stake for s, _ in self.corrected_stakes):  # the first: its closer is the stored one
            self.corrected_stakes.append((stake, previous))
        self.resolved_failures.append((call.client, call.transaction_id))
        fmt = currency.format
        return CorrectionResult(self.view(tx), False, previous_payout=fmt(old_payout), taken=fmt(taken),
                                debt_added=fmt(max(debt_added, 0)), debt_repaid=fmt(max(-debt_added, 0)))

    def _correction_failure(self, call: CorrectionCall, refusal: errors.WalletError) -> Failure:
        stake_tx = self.txs.get((call.client, call.stake_id))
        key = AccountKey(call.client, stake_tx.user_id if stake_tx else "", stake_tx.currency if stake_tx else "")
        purpose = Purpose.UNSETTLE if call.new_payout is None else Purpose.RESETTLE
        amount = call.new_payout if call.new_payout is not None else "unsettle"
        return Failure(CreditCommand(call.transaction_id, key, amount, purpose, call.stake_id, call.reference), refusal)

    # ------------------------------------------------------------ helpers

    def _tombstone(self, client: str, transaction_id: str, reference: str) -> Tx:
        return self._add_tx(Tx(
            client=client, transaction_id=transaction_id, purpose=Purpose.CANCEL, status=TxStatus.TOMBSTONE,
            account_id=None, user_id="", currency="", amount=0, balance_after=None, reference=reference,
            request_hash=fingerprint("tombstone", client, transaction_id), created_at=self.now,
        ))

    def _add_tx(self, tx: Tx) -> Tx:
        self.new_txs.append(tx)
        if tx.transaction_id is not None:
            self.txs[(tx.client, tx.transaction_id)] = tx
        return tx

    def _post(self, tx: Tx, wallet: Wallet, legs: list[Posting]) -> None:
        system = self.system_accounts(wallet.key.client, wallet.key.currency)
        for leg in legs:
            if leg.amount == 0:
                continue
            account_id = wallet.id if leg.kind == AccountKind.USER else system[leg.kind]
            self.new_entries.append((tx, account_id, leg.amount))
            if leg.kind != AccountKind.USER:
                self.system_deltas[account_id] = self.system_deltas.get(account_id, 0) + leg.amount

    def _close(self, stake: Stake, state: StakeState, by: Tx) -> None:
        stake.state = state
        stake.closed_by = by
        if not stake.is_new and not any(s is stake for s, _ in self.corrected_stakes):
            self.closed_stakes.append(stake)

    def view(self, tx: Tx) -> TransactionView:
        return transaction_view(self.currencies, tx)


def transaction_view(currencies: CurrencyRegistry, tx: Tx, stake_state: str | None = None) -> TransactionView:
    """What a caller sees of a transaction row; `stake_state` when the row's stake was not loaded."""
    scale = currencies.get(tx.currency).scale if tx.currency in currencies else 0
    fmt = Currency(tx.currency, scale).format
    state = tx.stake.state if tx.stake is not None else stake_state
    return TransactionView(
        transaction_id=tx.transaction_id or tx.target_id or "",
        account=AccountKey(tx.client, tx.user_id, tx.currency),
        purpose=Purpose(tx.purpose),
        amount=fmt(tx.amount),
        balance_after=fmt(tx.balance_after) if tx.balance_after is not None else "",
        status=TxStatus(tx.status),
        reference=tx.reference,
        settles_transaction_id=tx.target_id or "",
        stake_state=StakeState(state) if state else None,
        created_at=tx.created_at,
    )


def describe(key: AccountKey) -> str:
    return f"{key.client}/{key.user_id}/{key.currency}"


def not_found(key: AccountKey) -> errors.AccountNotFound:
    return errors.AccountNotFound(f"no wallet {describe(key)}; open it first", user_id=key.user_id)


@dataclass(frozen=True)
class AuditRow:
    """One operator action, written in the same database transaction as its money movement."""

    at: datetime
    client: str
    actor: str
    action: str
    transaction_id: str
    target: str
    reason: str
    outcome: str  # applied, replayed, or the refusal's reason

    def row(self) -> dict[str, object]:
        return {"at": self.at, "client": self.client[:128], "actor": self.actor[:128], "action": self.action[:32],
                "transaction_id": self.transaction_id[:128], "target": self.target[:128],
                "reason": self.reason[:512], "outcome": self.outcome[:32]}


def audit_row(now: datetime, call: SingleCall, note: AuditNote, outcome: Outcome) -> AuditRow:
    target = ""
    if isinstance(call, DebitCall):
        client, tid = call.client, ",".join(item.transaction_id for item, _, _ in call.items)
    elif isinstance(call, CreditCall):
        command = call.command
        client, tid, target = command.account.client, command.transaction_id, command.settles_transaction_id
        if not target:
            target = f"{call.command.account.user_id}/{call.command.account.currency}"
    elif isinstance(call, CorrectionCall):
        client, tid, target = call.client, call.transaction_id, call.stake_id
    elif isinstance(call, CancelCall):
        client, tid, target = call.client, call.transaction_id, call.transaction_id
    else:
        client, tid = call.client, ",".join(call.transaction_ids)
    if isinstance(outcome, errors.WalletError):
        result = outcome.reason
    else:
        result = "replayed" if getattr(outcome, "replayed", False) else "applied"
    return AuditRow(now, client, note.actor, note.action, tid, target, note.reason, result)
