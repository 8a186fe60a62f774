"""The ledger's use cases: the only code that changes money.

Each call is one database transaction (`_write`), retried as a whole on serialization
failures, deadlocks, lost connections and the unique-key race of two calls with one id.
Inside it, the order is always the same:

1. look up the caller's transaction ids: a replay returns the stored result, a reuse of an id
   with other content is an IdempotencyConflict, a tombstone refuses a Debit;
2. lock the user wallets involved (SELECT ... FOR UPDATE, ascending id), then update the system
   accounts (ascending id): one global lock order, so no deadlock between our own calls;
3. check the rules on the locked balances, then write transaction, entries, stake and balances.

A refused Debit (insufficient funds, blocked or unknown wallet) is recorded as a REFUSED
transaction with no entries, so that a replay gets the same refusal even after the balance
changed (betflex must never see a bet it was told was refused taken later). Every other failed
call (bad input, conflict, refused credit) leaves the ledger exactly as it was. A refused
PAYOUT additionally goes to `settlement_failures`, an operator queue outside the ledger.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, insert, null, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError

from wallet_core import errors
from wallet_core.currencies import Currency, CurrencyRegistry
from wallet_core.domain import (
    CREDIT_PURPOSES,
    DEBIT_PURPOSES,
    SYSTEM_KINDS,
    AccountKey,
    AccountKind,
    AccountStatus,
    AccountView,
    CancelOutcome,
    CancelResult,
    CreditCommand,
    CreditResult,
    DebitItem,
    DebitResult,
    Purpose,
    SettlementFailureView,
    StakeState,
    TransactionPage,
    TransactionView,
    TxStatus,
    check_identifier,
    check_reference,
    credit_fingerprint,
    debit_fingerprint,
    fingerprint,
    postings,
)
from wallet_core.money import MAX_MINOR
from wallet_core.storage.engine import READ_ONLY, is_sqlite
from wallet_core.storage.schema import accounts, entries, settlement_failures, stakes, transactions

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_DEBIT_ITEMS = 100
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# reasons a Debit is refused by the ledger itself; these are recorded and replayed
RECORDED_DEBIT_REFUSALS = (errors.InsufficientFunds, errors.AccountBlocked, errors.AccountNotFound)


class _Retry(Exception):
    """Internal: the transaction lost a race that a fresh attempt will resolve."""


@dataclass(frozen=True)
class _Refused:
    """A decision to refuse that was committed (recorded); raised to the caller after commit."""

    error: errors.WalletError


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """Thread-safe; one instance per process, shared by every gRPC worker thread.

    Every method raises a wallet_core.errors.WalletError subclass on refusal; database
    outages surface as errors.Unavailable after bounded retries.
    """

    def __init__(
        self,
        engine: Engine,
        currencies: CurrencyRegistry,
        *,
        max_attempts: int = 12,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.engine = engine
        self.currencies = currencies
        self.max_attempts = max_attempts
        self.clock = clock
        # SQLite has one writer at a time anyway; queueing writers here is fairer and faster
        # than letting them spin on the database lock.
        self._write_lock: Any = threading.Lock() if is_sqlite(engine) else nullcontext()
        self._system_ids: dict[tuple[str, str], dict[AccountKind, int]] = {}

    # ------------------------------------------------------------------ accounts

    def open_account(self, key: AccountKey) -> tuple[AccountView, bool]:
        """(the wallet, True if it was created by this call)."""
        key.validate()
        currency = self.currencies.get(key.currency)

        def work(conn: Connection) -> tuple[AccountView, bool]:
            row = self._find_user(conn, key)
            if row is not None:
                return self._account_view(row, currency), False
            now = self.clock()
            self._ensure_system_accounts(conn, key.client, key.currency, now)
            conn.execute(
                insert(accounts).values(
                    client=key.client, kind=AccountKind.USER, user_id=key.user_id, currency=key.currency,
                    balance=0, status=AccountStatus.ACTIVE, created_at=now,
                )
            )
            row = self._find_user(conn, key)
            assert row is not None
            return self._account_view(row, currency), True

        return self._write(work)

    def get_balance(self, key: AccountKey) -> AccountView:
        key.validate()
        currency = self.currencies.get(key.currency)
        with self._read() as conn:
            row = self._find_user(conn, key)
        if row is None:
            raise self._not_found(key)
        return self._account_view(row, currency)

    def set_account_status(self, key: AccountKey, status: AccountStatus) -> AccountView:
        key.validate()
        currency = self.currencies.get(key.currency)
        status = AccountStatus(status)

        def work(conn: Connection) -> AccountView:
            row = self._find_user(conn, key, lock=True)
            if row is None:
                raise self._not_found(key)
            conn.execute(update(accounts).where(accounts.c.id == row.id).values(status=status))
            row = self._find_user(conn, key)
            assert row is not None
            return self._account_view(row, currency)

        return self._write(work)

    # ------------------------------------------------------------------ debit

    def debit(self, items: Sequence[DebitItem]) -> DebitResult:
        """Apply every item or none. Items of one call share a client and have distinct ids."""
        parsed = self._validate_debit(items)
        batch_ids = tuple(sorted(item.transaction_id for item, _, _ in parsed))
        hashes = [debit_fingerprint(item, minor, batch_ids) for item, _, minor in parsed]
        client = parsed[0][0].account.client

        def work(conn: Connection) -> DebitResult | _Refused:
            existing = self._existing(conn, client, [item.transaction_id for item, _, _ in parsed])
            if existing:
                return self._judge_debit_replay(parsed, hashes, existing)
            return self._apply_debit(conn, parsed, hashes)

        return self._write(work)

    def _validate_debit(self, items: Sequence[DebitItem]) -> list[tuple[DebitItem, Currency, int]]:
        if not items:
            raise errors.InvalidArgument("a debit needs at least one item")
        if len(items) > MAX_DEBIT_ITEMS:
            raise errors.InvalidArgument(f"a debit takes at most {MAX_DEBIT_ITEMS} items, got {len(items)}")
        parsed = []
        for n, item in enumerate(items):
            field = f"items[{n}]"
            check_identifier(f"{field}.transaction_id", item.transaction_id)
            item.account.validate()
            check_reference(item.reference)
            if item.purpose not in DEBIT_PURPOSES:
                raise errors.InvalidArgument(f"{field}.purpose must be STAKE or WITHDRAWAL, got {item.purpose}")
            currency = self.currencies.get(item.account.currency)
            minor = currency.parse(item.amount, field=f"{field}.amount")
            if minor == 0:
                raise errors.InvalidAmount(f"{field}.amount must be greater than zero")
            parsed.append((item, currency, minor))
        if len({item.account.client for item in items}) > 1:
            raise errors.InvalidArgument("all items of a debit must belong to the same client")
        if len({item.transaction_id for item in items}) != len(items):
            raise errors.InvalidArgument("the items of a debit must have distinct transaction ids")
        return parsed

    def _judge_debit_replay(
        self, parsed: list[tuple[DebitItem, Currency, int]], hashes: list[str], existing: dict[str, Row[Any]]
    ) -> DebitResult | _Refused:
        ids = [item.transaction_id for item, _, _ in parsed]
        same = len(existing) == len(ids) and all(
            existing[i].request_hash == h and existing[i].status != TxStatus.TOMBSTONE for i, h in zip(ids, hashes)
        )
        if same:
            first = existing[ids[0]]
            if first.status == TxStatus.REFUSED:
                return _Refused(errors.BY_REASON[first.error_reason](first.error_message or first.error_reason))
            return DebitResult([self._transaction_view(existing[i]) for i in ids], replayed=True)
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

    def _apply_debit(
        self, conn: Connection, parsed: list[tuple[DebitItem, Currency, int]], hashes: list[str]
    ) -> DebitResult | _Refused:
        now = self.clock()
        keys = list({item.account for item, _, _ in parsed})
        users = self._lock_users(conn, keys)

        refusal: errors.WalletError | None = None
        needed: dict[AccountKey, int] = {}
        for item, currency, minor in parsed:
            needed[item.account] = needed.get(item.account, 0) + minor
        for key in sorted(needed, key=lambda k: (k.user_id, k.currency)):
            row = users.get(key)
            if row is None:
                refusal = self._not_found(key)
            elif row.status == AccountStatus.BLOCKED:
                refusal = errors.AccountBlocked(f"wallet {_describe(key)} is blocked", user_id=key.user_id)
            elif row.balance < needed[key]:
                cur = self.currencies.get(key.currency)
                refusal = errors.InsufficientFunds(
                    f"wallet {_describe(key)} holds {cur.format(row.balance)}, "
                    f"the debit needs {cur.format(needed[key])}",
                    user_id=key.user_id,
                )
            if refusal is not None:
                break
        if refusal is not None:
            self._record_refusal(conn, parsed, hashes, users, refusal, now)
            return _Refused(refusal)

        balances = {key: row.balance for key, row in users.items()}
        system_deltas: dict[int, int] = {}
        views = []
        for (item, currency, minor), h in zip(parsed, hashes):
            key = item.account
            user = users[key]
            balances[key] -= minor
            pk = self._insert_transaction(
                conn, client=key.client, transaction_id=item.transaction_id, purpose=item.purpose,
                status=TxStatus.APPLIED, account_id=user.id, user_id=key.user_id, currency=key.currency,
                amount=minor, balance_after=balances[key], reference=item.reference, request_hash=h, created_at=now,
            )
            system = self._system_accounts(conn, key.client, key.currency)
            self._insert_entries(conn, pk, postings(item.purpose, minor), user.id, system, system_deltas)
            if item.purpose == Purpose.STAKE:
                conn.execute(
                    insert(stakes).values(
                        transaction_pk=pk, client=key.client, currency=key.currency, account_id=user.id,
                        amount=minor, state=StakeState.OPEN, closed_by_pk=None,
                    )
                )
            views.append(
                TransactionView(
                    transaction_id=item.transaction_id, account=key, purpose=item.purpose,
                    amount=currency.format(minor), balance_after=currency.format(balances[key]),
                    status=TxStatus.APPLIED, reference=item.reference, settles_transaction_id="",
                    stake_state=StakeState.OPEN if item.purpose == Purpose.STAKE else None, created_at=now,
                )
            )
        for key, balance in balances.items():
            if balance != users[key].balance:
                conn.execute(update(accounts).where(accounts.c.id == users[key].id).values(balance=balance))
        self._update_system_balances(conn, system_deltas)
        return DebitResult(views, replayed=False)

    def _record_refusal(
        self,
        conn: Connection,
        parsed: list[tuple[DebitItem, Currency, int]],
        hashes: list[str],
        users: dict[AccountKey, Row[Any]],
        refusal: errors.WalletError,
        now: datetime,
    ) -> None:
        for (item, _, minor), h in zip(parsed, hashes):
            key = item.account
            row = users.get(key)
            self._insert_transaction(
                conn, client=key.client, transaction_id=item.transaction_id, purpose=item.purpose,
                status=TxStatus.REFUSED, account_id=row.id if row is not None else None, user_id=key.user_id,
                currency=key.currency, amount=minor, balance_after=row.balance if row is not None else None,
                reference=item.reference, request_hash=h, created_at=now,
                error_reason=refusal.reason, error_message=refusal.message[:512],
            )

    # ------------------------------------------------------------------ credit

    def credit(self, command: CreditCommand) -> CreditResult:
        key = command.account
        check_identifier("transaction_id", command.transaction_id)
        key.validate()
        check_reference(command.reference)
        if command.purpose not in CREDIT_PURPOSES:
            raise errors.InvalidArgument(f"purpose must be PAYOUT, DEPOSIT or ADJUSTMENT, got {command.purpose}")
        if command.purpose == Purpose.PAYOUT:
            check_identifier("settles_transaction_id", command.settles_transaction_id)
        elif command.settles_transaction_id:
            raise errors.InvalidArgument("settles_transaction_id is only for PAYOUT credits")
        try:
            currency = self.currencies.get(key.currency)
            minor = currency.parse(command.amount)
            if minor == 0 and command.purpose != Purpose.PAYOUT:
                raise errors.InvalidAmount("amount must be greater than zero (only a payout may be zero)")
            request_hash = credit_fingerprint(command, minor)
            return self._write(lambda conn: self._apply_credit(conn, command, currency, minor, request_hash))
        except errors.Unavailable:
            raise
        except errors.WalletError as refusal:
            if command.purpose == Purpose.PAYOUT and not isinstance(
                refusal, errors.Unauthenticated | errors.PermissionDenied
            ):
                self._note_settlement_failure(command, refusal)
            raise

    def _apply_credit(
        self, conn: Connection, cmd: CreditCommand, currency: Currency, minor: int, request_hash: str
    ) -> CreditResult:
        key = cmd.account
        existing = self._existing(conn, key.client, [cmd.transaction_id]).get(cmd.transaction_id)
        if existing is not None:
            if existing.request_hash == request_hash and existing.status == TxStatus.APPLIED:
                return CreditResult(self._transaction_view(existing), replayed=True)
            raise errors.IdempotencyConflict(
                f"transaction id {cmd.transaction_id!r} was already used for a different request; "
                "nothing was changed",
                transaction_id=cmd.transaction_id,
            )
        user = self._lock_users(conn, [key]).get(key)
        if user is None:
            if cmd.purpose == Purpose.PAYOUT:  # say what is wrong with the stake, if anything
                self._check_settleable(cmd, self._lock_stake(conn, key.client, cmd.settles_transaction_id), None)
            raise self._not_found(key)
        now = self.clock()
        system = self._system_accounts(conn, key.client, key.currency)
        system_deltas: dict[int, int] = {}
        stake_amount, target_pk = 0, None
        if cmd.purpose == Purpose.PAYOUT:
            stake = self._lock_stake(conn, key.client, cmd.settles_transaction_id)
            self._check_settleable(cmd, stake, user.id)
            stake_amount, target_pk = stake.amount, stake.transaction_pk
        elif cmd.purpose == Purpose.DEPOSIT and user.status == AccountStatus.BLOCKED:
            raise errors.AccountBlocked(f"wallet {_describe(key)} is blocked", user_id=key.user_id)
        balance = user.balance + minor
        if balance > MAX_MINOR:
            raise errors.InvalidAmount("the credit would take the wallet beyond the largest balance the ledger holds")
        pk = self._insert_transaction(
            conn, client=key.client, transaction_id=cmd.transaction_id, purpose=cmd.purpose,
            status=TxStatus.APPLIED, account_id=user.id, user_id=key.user_id, currency=key.currency, amount=minor,
            balance_after=balance, reference=cmd.reference, request_hash=request_hash, created_at=now,
            target_id=cmd.settles_transaction_id or None, target_pk=target_pk,
        )
        self._insert_entries(
            conn, pk, postings(cmd.purpose, minor, stake_amount=stake_amount), user.id, system, system_deltas
        )
        if target_pk is not None:
            self._close_stake(conn, target_pk, StakeState.SETTLED, pk)
            conn.execute(
                update(settlement_failures)
                .where(settlement_failures.c.client == key.client)
                .where(settlement_failures.c.transaction_id == cmd.transaction_id)
                .where(settlement_failures.c.resolved_at.is_(None))
                .values(resolved_at=now)
            )
        if minor:
            conn.execute(update(accounts).where(accounts.c.id == user.id).values(balance=balance))
        self._update_system_balances(conn, system_deltas)
        view = TransactionView(
            transaction_id=cmd.transaction_id, account=key, purpose=cmd.purpose, amount=currency.format(minor),
            balance_after=currency.format(balance), status=TxStatus.APPLIED, reference=cmd.reference,
            settles_transaction_id=cmd.settles_transaction_id, stake_state=None, created_at=now,
        )
        return CreditResult(view, replayed=False)

    def _check_settleable(self, cmd: CreditCommand, stake: Row[Any] | None, user_pk: int | None) -> None:
        target = cmd.settles_transaction_id
        if stake is None or stake.state is None:
            if stake is not None and getattr(stake, "status", None) == TxStatus.TOMBSTONE:
                raise errors.StakeCancelled(f"stake {target!r} was cancelled before it was placed", stake=target)
            raise errors.StakeNotFound(f"no stake with transaction id {target!r}", stake=target)
        if stake.state == StakeState.SETTLED:
            raise errors.AlreadySettled(f"stake {target!r} is already settled by another transaction", stake=target)
        if stake.state == StakeState.CANCELLED:
            raise errors.StakeCancelled(f"stake {target!r} was cancelled; it cannot be settled", stake=target)
        if stake.currency != cmd.account.currency:
            raise errors.CurrencyMismatch(
                f"stake {target!r} is in {stake.currency}, the payout in {cmd.account.currency}", stake=target
            )
        if stake.account_id != user_pk:
            raise errors.StakeMismatch(f"stake {target!r} belongs to another wallet", stake=target)

    def _note_settlement_failure(self, cmd: CreditCommand, refusal: errors.WalletError) -> None:
        """Keep a refused payout for operators. Best effort: never hides the refusal itself."""
        key = cmd.account
        values = dict(
            settles_transaction_id=cmd.settles_transaction_id[:128], user_id=str(key.user_id)[:128],
            currency=str(key.currency)[:10], amount=str(cmd.amount)[:64], reason=refusal.reason,
            message=refusal.message[:512],
        )

        def work(conn: Connection) -> None:
            now = self.clock()
            found = conn.execute(
                select(settlement_failures.c.id)
                .where(settlement_failures.c.client == key.client)
                .where(settlement_failures.c.transaction_id == cmd.transaction_id)
            ).first()
            if found is None:
                conn.execute(
                    insert(settlement_failures).values(
                        client=key.client, transaction_id=cmd.transaction_id, attempts=1, first_seen=now,
                        last_seen=now, resolved_at=None, **values,
                    )
                )
            else:
                conn.execute(
                    update(settlement_failures).where(settlement_failures.c.id == found.id)
                    .values(attempts=settlement_failures.c.attempts + 1, last_seen=now, **values)
                )

        if not key.client or not cmd.transaction_id or len(key.client) > 128 or len(cmd.transaction_id) > 128:
            return
        try:
            self._write(work)
        except Exception:
            log.exception("could not record the refused payout %r", cmd.transaction_id)

    # ------------------------------------------------------------------ cancel

    def cancel(self, client: str, transaction_id: str, reference: str = "") -> CancelResult:
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        check_reference(reference)
        return self._write(lambda conn: self._apply_cancel(conn, client, transaction_id, reference))

    def _apply_cancel(self, conn: Connection, client: str, transaction_id: str, reference: str) -> CancelResult:
        now = self.clock()
        target = self._existing(conn, client, [transaction_id]).get(transaction_id)
        if target is None:
            self._insert_transaction(
                conn, client=client, transaction_id=transaction_id, purpose=Purpose.CANCEL,
                status=TxStatus.TOMBSTONE, account_id=None, user_id="", currency="", amount=0, balance_after=None,
                reference=reference, request_hash=fingerprint("tombstone", client, transaction_id), created_at=now,
            )
            tomb = self._existing(conn, client, [transaction_id])[transaction_id]
            return CancelResult(CancelOutcome.TOMBSTONED, self._transaction_view(tomb), replayed=False)
        if target.status == TxStatus.TOMBSTONE:
            return CancelResult(CancelOutcome.TOMBSTONED, self._transaction_view(target), replayed=True)
        if target.purpose != Purpose.STAKE:
            raise errors.NotCancellable(
                f"transaction {transaction_id!r} is a {target.purpose}; only stakes can be cancelled",
                transaction_id=transaction_id,
            )
        if target.status == TxStatus.REFUSED:
            return CancelResult(CancelOutcome.NOT_APPLIED, self._transaction_view(target), replayed=False)
        key = AccountKey(client, target.user_id, target.currency)
        user = self._lock_users(conn, [key])[key]
        stake = self._lock_stake(conn, client, transaction_id)
        assert stake is not None and stake.state is not None
        if stake.state == StakeState.SETTLED:
            raise errors.AlreadySettled(f"stake {transaction_id!r} is settled; it cannot be cancelled",
                                        stake=transaction_id)
        if stake.state == StakeState.CANCELLED:
            reversal = conn.execute(select(transactions).where(transactions.c.id == stake.closed_by_pk)).one()
            return CancelResult(CancelOutcome.REVERSED, self._transaction_view(reversal), replayed=True)
        currency = self.currencies.get(key.currency)
        balance = user.balance + stake.amount
        pk = self._insert_transaction(
            conn, client=client, transaction_id=None, purpose=Purpose.CANCEL, status=TxStatus.APPLIED,
            account_id=user.id, user_id=key.user_id, currency=key.currency, amount=stake.amount,
            balance_after=balance, reference=reference, request_hash=fingerprint("cancel", client, transaction_id),
            created_at=now, target_id=transaction_id, target_pk=stake.transaction_pk,
        )
        system_deltas: dict[int, int] = {}
        system = self._system_accounts(conn, client, key.currency)
        self._insert_entries(conn, pk, postings(Purpose.CANCEL, stake.amount), user.id, system, system_deltas)
        self._close_stake(conn, stake.transaction_pk, StakeState.CANCELLED, pk)
        conn.execute(update(accounts).where(accounts.c.id == user.id).values(balance=balance))
        self._update_system_balances(conn, system_deltas)
        view = TransactionView(
            transaction_id=transaction_id, account=key, purpose=Purpose.CANCEL, amount=currency.format(stake.amount),
            balance_after=currency.format(balance), status=TxStatus.APPLIED, reference=reference,
            settles_transaction_id=transaction_id, stake_state=None, created_at=now,
        )
        return CancelResult(CancelOutcome.REVERSED, view, replayed=False)

    # ------------------------------------------------------------------ reads

    def list_transactions(self, key: AccountKey, page_size: int = 50, page_token: str = "") -> TransactionPage:
        key.validate()
        self.currencies.get(key.currency)
        if page_size <= 0:
            page_size = DEFAULT_PAGE_SIZE
        page_size = min(page_size, MAX_PAGE_SIZE)
        before = _decode_page_token(page_token)
        with self._read() as conn:
            user = self._find_user(conn, key)
            if user is None:
                raise self._not_found(key)
            query = (
                select(transactions, stakes.c.state.label("stake_state"))
                .outerjoin(stakes, stakes.c.transaction_pk == transactions.c.id)
                .where(transactions.c.account_id == user.id)
                .order_by(transactions.c.id.desc())
                .limit(page_size + 1)
            )
            if before is not None:
                query = query.where(transactions.c.id < before)
            rows = conn.execute(query).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = _encode_page_token(rows[-1].id) if more else ""
        return TransactionPage([self._transaction_view(r) for r in rows], token)

    def list_settlement_failures(
        self, client: str, include_resolved: bool = False, limit: int = 100
    ) -> list[SettlementFailureView]:
        check_identifier("client", client)
        limit = min(max(limit, 1) if limit else 100, 1000)
        query = (
            select(settlement_failures)
            .where(settlement_failures.c.client == client)
            .order_by(settlement_failures.c.last_seen.desc(), settlement_failures.c.id.desc())
            .limit(limit)
        )
        if not include_resolved:
            query = query.where(settlement_failures.c.resolved_at.is_(None))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            SettlementFailureView(
                client=r.client, transaction_id=r.transaction_id, settles_transaction_id=r.settles_transaction_id,
                account=AccountKey(r.client, r.user_id, r.currency), amount=r.amount, reason=r.reason,
                message=r.message, attempts=r.attempts, first_seen=_aware(r.first_seen),
                last_seen=_aware(r.last_seen), resolved_at=_aware(r.resolved_at) if r.resolved_at else None,
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ queries

    def _find_user(self, conn: Connection, key: AccountKey, *, lock: bool = False) -> Row[Any] | None:
        query = select(accounts).where(
            accounts.c.client == key.client,
            accounts.c.kind == AccountKind.USER,
            accounts.c.user_id == key.user_id,
            accounts.c.currency == key.currency,
        )
        if lock:
            query = query.with_for_update()
        return conn.execute(query).first()

    def _lock_users(self, conn: Connection, keys: Sequence[AccountKey]) -> dict[AccountKey, Row[Any]]:
        """Lock the user wallets of `keys` in ascending id order; missing wallets are absent."""
        match = or_(*[
            and_(accounts.c.user_id == k.user_id, accounts.c.currency == k.currency) for k in keys
        ])
        query = (
            select(accounts)
            .where(accounts.c.client == keys[0].client, accounts.c.kind == AccountKind.USER, match)
            .order_by(accounts.c.id)
            .with_for_update()
        )
        rows = conn.execute(query).all()
        return {AccountKey(r.client, r.user_id, r.currency): r for r in rows}

    def _lock_stake(self, conn: Connection, client: str, transaction_id: str) -> Row[Any] | None:
        """The transaction named `transaction_id` with its stake row, which is locked.

        The stake row is locked on its own (not through a join), so that after waiting for a
        concurrent settlement or cancel, PostgreSQL returns the row as that one committed it.
        """
        target = conn.execute(
            select(transactions.c.id, transactions.c.status)
            .where(transactions.c.client == client, transactions.c.transaction_id == transaction_id)
        ).first()
        if target is None:
            return None
        stake = conn.execute(
            select(stakes).where(stakes.c.transaction_pk == target.id).with_for_update()
        ).first()
        if stake is None:
            return conn.execute(
                select(
                    transactions.c.id.label("transaction_pk"), transactions.c.status,
                    null().label("state"), null().label("closed_by_pk"),
                ).where(transactions.c.id == target.id)
            ).first()
        return stake

    def _close_stake(self, conn: Connection, stake_pk: int, state: StakeState, closed_by_pk: int) -> None:
        done = conn.execute(
            update(stakes)
            .where(stakes.c.transaction_pk == stake_pk, stakes.c.state == StakeState.OPEN)
            .values(state=state, closed_by_pk=closed_by_pk)
        )
        if done.rowcount != 1:
            raise _Retry(f"stake {stake_pk} was closed concurrently")

    def _existing(self, conn: Connection, client: str, ids: Sequence[str]) -> dict[str, Row[Any]]:
        rows = conn.execute(
            select(transactions, stakes.c.state.label("stake_state"))
            .outerjoin(stakes, stakes.c.transaction_pk == transactions.c.id)
            .where(transactions.c.client == client, transactions.c.transaction_id.in_(list(ids)))
        ).all()
        return {r.transaction_id: r for r in rows}

    def _ensure_system_accounts(self, conn: Connection, client: str, currency: str, now: datetime) -> None:
        have = {
            r.kind
            for r in conn.execute(
                select(accounts.c.kind).where(
                    accounts.c.client == client, accounts.c.currency == currency, accounts.c.kind != AccountKind.USER
                )
            )
        }
        for kind in SYSTEM_KINDS:
            if kind not in have:
                conn.execute(
                    insert(accounts).values(
                        client=client, kind=kind, user_id="", currency=currency, balance=0,
                        status=AccountStatus.ACTIVE, created_at=now,
                    )
                )

    def _system_accounts(self, conn: Connection, client: str, currency: str) -> dict[AccountKind, int]:
        cached = self._system_ids.get((client, currency))
        if cached is not None:
            return cached
        rows = conn.execute(
            select(accounts.c.id, accounts.c.kind).where(
                accounts.c.client == client, accounts.c.currency == currency, accounts.c.kind != AccountKind.USER
            )
        ).all()
        ids = {AccountKind(r.kind): r.id for r in rows}
        if len(ids) != len(SYSTEM_KINDS):
            raise RuntimeError(f"system accounts of {client}/{currency} are missing; the ledger is damaged")
        self._system_ids[(client, currency)] = ids
        return ids

    def _insert_transaction(self, conn: Connection, **values: Any) -> int:
        values.setdefault("target_id", None)
        values.setdefault("target_pk", None)
        values.setdefault("error_reason", None)
        values.setdefault("error_message", None)
        return conn.execute(insert(transactions).values(**values).returning(transactions.c.id)).scalar_one()

    def _insert_entries(
        self,
        conn: Connection,
        transaction_pk: int,
        legs: Sequence[Any],
        user_pk: int,
        system: dict[AccountKind, int],
        system_deltas: dict[int, int],
    ) -> None:
        rows = []
        for leg in legs:
            if leg.amount == 0:
                continue
            account_pk = user_pk if leg.kind == AccountKind.USER else system[leg.kind]
            rows.append({"transaction_pk": transaction_pk, "account_id": account_pk, "amount": leg.amount})
            if leg.kind != AccountKind.USER:
                system_deltas[account_pk] = system_deltas.get(account_pk, 0) + leg.amount
        if rows:
            conn.execute(insert(entries), rows)

    def _update_system_balances(self, conn: Connection, deltas: dict[int, int]) -> None:
        # ascending id: the same order for every caller
        for account_pk in sorted(deltas):
            if deltas[account_pk]:
                conn.execute(
                    update(accounts).where(accounts.c.id == account_pk)
                    .values(balance=accounts.c.balance + deltas[account_pk])
                )

    # ------------------------------------------------------------------ views

    def _account_view(self, row: Row[Any], currency: Currency) -> AccountView:
        return AccountView(
            key=AccountKey(row.client, row.user_id, row.currency), balance=currency.format(row.balance),
            status=AccountStatus(row.status), created_at=_aware(row.created_at),
        )

    def _transaction_view(self, row: Row[Any]) -> TransactionView:
        scale = self.currencies.get(row.currency).scale if row.currency in self.currencies else 0
        fmt = Currency(row.currency, scale).format
        stake_state = getattr(row, "stake_state", None)
        return TransactionView(
            transaction_id=row.transaction_id or row.target_id or "",
            account=AccountKey(row.client, row.user_id, row.currency),
            purpose=Purpose(row.purpose),
            amount=fmt(row.amount),
            balance_after=fmt(row.balance_after) if row.balance_after is not None else "",
            status=TxStatus(row.status),
            reference=row.reference,
            settles_transaction_id=row.target_id or "",
            stake_state=StakeState(stake_state) if stake_state else None,
            created_at=_aware(row.created_at),
        )

    def _not_found(self, key: AccountKey) -> errors.AccountNotFound:
        return errors.AccountNotFound(f"no wallet {_describe(key)}; open it first", user_id=key.user_id)

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_retryable(exc):
                raise errors.Unavailable("the ledger database is unavailable; retry later") from exc
            raise

    def _write(self, work: Callable[[Connection], T | _Refused]) -> T:
        """Run `work` in one transaction; retry the whole of it on races and transient failures."""
        delay = 0.005
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                with self._write_lock, self.engine.begin() as conn:
                    result = work(conn)
            except _Retry as exc:
                last = exc
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    log.critical("a ledger constraint refused a write: %s", exc.orig)
                    raise
                last = exc  # another call took the same key first: look again
            except DBAPIError as exc:
                if not (exc.connection_invalidated or _is_retryable(exc)):
                    raise
                last = exc
                log.warning("database hiccup (attempt %d/%d): %s", attempt + 1, self.max_attempts, exc.orig)
            else:
                if isinstance(result, _Refused):
                    raise result.error
                return result
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        raise errors.Unavailable("the ledger database is unavailable or overloaded; retry later") from last


def _describe(key: AccountKey) -> str:
    return f"{key.client}/{key.user_id}/{key.currency}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def _decode_page_token(token: str) -> int | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, _, value = text.partition(":")
        if version != "v1" or not value.isdigit():
            raise ValueError
        return int(value)
    except ValueError:
        raise errors.InvalidArgument("page_token is not one this service issued") from None


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_unique_violation(exc: IntegrityError) -> bool:
    return _sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _is_retryable(exc: DBAPIError) -> bool:
    state = _sqlstate(exc)
    if state is not None:
        # serialization failure, deadlock, connection exceptions, admin shutdown, cannot connect now
        return state in {"40001", "40P01", "57P01", "57P02", "57P03"} or state.startswith("08")
    message = str(exc.orig).lower()
    return "database is locked" in message or "unable to open database" in message or "disk i/o" in message

