"""The ledger's use cases: the only code that changes money.

Debit, Credit and Cancel are validated here, in the caller's thread, then applied as part of a
batch (wallet_core.committer: group commit; a lone call is a batch of one). A batch is one
database transaction, retried as a whole on serialization failures, deadlocks, dropped
connections and the unique-key race of two writers with one id:

1. load every row the calls name, locking the user wallets (ascending id) and the stakes
   that may be closed (storage.repository.load);
2. judge and apply each call, in order, on that in-memory picture (wallet_core.book): a
   replay returns the stored result, a reuse of an id with other content is an
   IdempotencyConflict, a tombstone refuses a Debit, the balance rules refuse an overdraft;
3. write what changed with multi-row statements, system accounts last; one COMMIT.

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

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError

from wallet_core import errors
from wallet_core.book import (
    Book,
    CancelCall,
    Call,
    CreditCall,
    DebitCall,
    Failure,
    FenceCall,
    Outcome,
    not_found,
    transaction_view,
)
from wallet_core.committer import Committer
from wallet_core.currencies import Currency, CurrencyRegistry
from wallet_core.domain import (
    CREDIT_PURPOSES,
    DEBIT_PURPOSES,
    SYSTEM_KINDS,
    AccountKey,
    AccountKind,
    AccountStatus,
    AccountView,
    CancelResult,
    CreditCommand,
    CreditResult,
    DebitItem,
    DebitResult,
    FenceResult,
    Purpose,
    SettlementFailurePage,
    SettlementFailureView,
    TransactionPage,
    check_identifier,
    check_reference,
    credit_fingerprint,
    debit_fingerprint,
)
from wallet_core.storage import repository
from wallet_core.storage.engine import READ_ONLY, is_sqlite
from wallet_core.storage.repository import ConcurrentChange, aware
from wallet_core.storage.schema import accounts, settlement_failures, stakes, transactions

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_DEBIT_ITEMS = 100
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


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
        group_commit: bool = True,
        max_batch: int = 128,
        max_wait: float = 0.0,
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
        self._committer: Committer[Call, Outcome] | None = (
            Committer(self._run_batch, max_batch=max_batch, max_wait=max_wait) if group_commit else None
        )

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
            self._check_scale(conn, currency, now)
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
            raise not_found(key)
        return self._account_view(row, currency)

    def set_account_status(self, key: AccountKey, status: AccountStatus) -> AccountView:
        key.validate()
        currency = self.currencies.get(key.currency)
        status = AccountStatus(status)

        def work(conn: Connection) -> AccountView:
            row = self._find_user(conn, key, lock=True)
            if row is None:
                raise not_found(key)
            conn.execute(update(accounts).where(accounts.c.id == row.id).values(status=status))
            row = self._find_user(conn, key)
            assert row is not None
            return self._account_view(row, currency)

        return self._write(work)

    # ------------------------------------------------------------------ money calls

    def debit(self, items: Sequence[DebitItem]) -> DebitResult:
        """Apply every item or none. Items of one call share a client and have distinct ids."""
        parsed = self._validate_debit(items)
        batch_ids = tuple(sorted(item.transaction_id for item, _, _ in parsed))
        hashes = [debit_fingerprint(item, minor, batch_ids) for item, _, minor in parsed]
        return self._submit(DebitCall(parsed, hashes))  # type: ignore[return-value]

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
        except errors.WalletError as refusal:
            if command.purpose == Purpose.PAYOUT:
                self._note_settlement_failure(command, refusal)
            raise
        call = CreditCall(command, currency, minor, credit_fingerprint(command, minor))
        return self._submit(call)  # type: ignore[return-value]

    def cancel(self, client: str, transaction_id: str, reference: str = "") -> CancelResult:
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        check_reference(reference)
        return self._submit(CancelCall(client, transaction_id, reference))  # type: ignore[return-value]

    def fence(self, client: str, transaction_ids: Sequence[str], reference: str = "") -> FenceResult:
        """Make the fate of each id final without moving money: tombstone the unknown ones, report the rest.

        For a caller whose Debit's outcome is unknown (its deadline passed): afterwards every id is
        either APPLIED (the debit happened), REFUSED or FENCED (it never will). Never reverses anything.
        """
        check_identifier("client", client)
        if not transaction_ids:
            raise errors.InvalidArgument("a fence needs at least one transaction id")
        if len(transaction_ids) > MAX_DEBIT_ITEMS:
            raise errors.InvalidArgument(f"a fence takes at most {MAX_DEBIT_ITEMS} ids, got {len(transaction_ids)}")
        for n, transaction_id in enumerate(transaction_ids):
            check_identifier(f"transaction_ids[{n}]", transaction_id)
        if len(set(transaction_ids)) != len(transaction_ids):
            raise errors.InvalidArgument("the transaction ids of a fence must be distinct")
        check_reference(reference)
        return self._submit(FenceCall(client, tuple(transaction_ids), reference))  # type: ignore[return-value]

    def check_currencies(self) -> None:
        """The start-up check: every currency of the ledger has the scale this process is configured with.

        Raises ScaleMismatch naming each currency and both scales. A currency the ledger uses but
        has no scale for (a ledger from before scales were recorded) gets this process's scale.
        """
        def work(conn: Connection) -> list[str]:
            now = self.clock()
            used = conn.execute(select(accounts.c.currency).distinct()).scalars().all()
            for code in sorted(set(used) - set(repository.recorded_scales(conn))):
                if code in self.currencies:
                    repository.record_scale(conn, self.currencies.get(code), now)
            problems = []
            for code, scale in sorted(repository.recorded_scales(conn).items()):
                if code not in self.currencies:
                    log.warning("the ledger holds %s (scale %d), which this process is not configured for: "
                                "calls in %s will be refused", code, scale, code)
                elif self.currencies.get(code).scale != scale:
                    problems.append(f"{code}: the ledger keeps it with scale {scale}, "
                                    f"this process is configured with scale {self.currencies.get(code).scale}")
            return problems

        problems = self._write(work)
        if problems:
            raise ScaleMismatch(
                "refusing to start: currency scales differ from the ledger's (" + "; ".join(problems) + "). "
                "A currency's scale cannot change once used: fix WALLET_CURRENCIES / [currencies]"
            )

    def close(self) -> None:
        """Finish the calls in flight and stop the committer; the engine stays the caller's."""
        if self._committer is not None:
            self._committer.close()

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

    def _submit(self, call: Call) -> Outcome:
        outcome = self._committer.submit(call) if self._committer is not None else self._run_batch([call])[0]
        if isinstance(outcome, errors.WalletError):
            raise outcome
        return outcome

    def _run_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        def work(conn: Connection) -> list[Outcome]:
            book = Book(self.currencies, self.clock(), lambda c, cur: self._system_accounts(conn, c, cur))
            repository.load(conn, book, calls)
            outcomes = [book.apply(call) for call in calls]
            repository.write(conn, book)
            return outcomes

        try:
            return self._write(work)
        except errors.WalletError:
            raise
        except Exception:
            if len(calls) == 1:
                raise
            # something unexpected: run each call alone, so that only the culprit fails
            log.exception("a batch of %d calls failed; running them one by one", len(calls))
            outcomes: list[Outcome] = []
            for call in calls:
                try:
                    outcomes.extend(self._run_batch([call]))
                except errors.WalletError as exc:
                    outcomes.append(exc)
                except Exception:
                    log.exception("call %r failed", call)
                    outcomes.append(errors.WalletError("internal error; see the server log"))
            return outcomes

    def _note_settlement_failure(self, command: CreditCommand, refusal: errors.WalletError) -> None:
        """Keep a payout refused before it reached a batch (bad amount, unknown currency) for operators."""
        try:
            self._write(lambda conn: repository.record_failures(conn, self.clock(), [Failure(command, refusal)]))
        except Exception:
            log.exception("could not record the refused payout %r", command.transaction_id)

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
                raise not_found(key)
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
        return TransactionPage([transaction_view(self.currencies, repository.tx_from_row(r), r.stake_state) for r in rows], token)

    def list_settlement_failures(
        self, client: str, include_resolved: bool = False, limit: int = 100, page_token: str = ""
    ) -> SettlementFailurePage:
        """One page of a client's refused payouts, newest first by id (when each was first refused).

        Ordered by id, not by last_seen: a payout refused again while an operator pages through
        must neither skip nor repeat a row.
        """
        check_identifier("client", client)
        limit = min(max(limit, 1) if limit else 100, 1000)
        before = _decode_page_token(page_token)
        query = (
            select(settlement_failures)
            .where(settlement_failures.c.client == client)
            .order_by(settlement_failures.c.id.desc())
            .limit(limit + 1)
        )
        if not include_resolved:
            query = query.where(settlement_failures.c.resolved_at.is_(None))
        if before is not None:
            query = query.where(settlement_failures.c.id < before)
        with self._read() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        token = _encode_page_token(rows[-1].id) if more else ""
        return SettlementFailurePage([
            SettlementFailureView(
                client=r.client, transaction_id=r.transaction_id, settles_transaction_id=r.settles_transaction_id,
                account=AccountKey(r.client, r.user_id, r.currency), amount=r.amount, reason=r.reason,
                message=r.message, attempts=r.attempts, first_seen=aware(r.first_seen),
                last_seen=aware(r.last_seen), resolved_at=aware(r.resolved_at) if r.resolved_at else None,
            )
            for r in rows
        ], token)

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

    def _check_scale(self, conn: Connection, currency: Currency, now: datetime) -> None:
        """Record `currency`'s scale on its first use; refuse it if the ledger keeps another scale."""
        recorded = repository.recorded_scales(conn, currency.code).get(currency.code)
        if recorded is None:
            repository.record_scale(conn, currency, now)
        elif recorded != currency.scale:
            raise errors.UnknownCurrency(
                f"currency {currency.code} is kept with scale {recorded} in the ledger but this process is "
                f"configured with scale {currency.scale}; it cannot serve {currency.code}",
                currency=currency.code,
            )

    def _system_accounts(self, conn: Connection, client: str, currency: str) -> dict[AccountKind, int]:
        cached = self._system_ids.get((client, currency))
        if cached is not None:
            return cached
        # first money call of this process in this currency: its scale must be the ledger's
        self._check_scale(conn, self.currencies.get(currency), self.clock())
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

    # ------------------------------------------------------------------ views

    def _account_view(self, row: Row[Any], currency: Currency) -> AccountView:
        return AccountView(
            key=AccountKey(row.client, row.user_id, row.currency), balance=currency.format(row.balance),
            status=AccountStatus(row.status), created_at=aware(row.created_at),
        )

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

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction; retry the whole of it on races and transient failures."""
        delay = 0.005
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                with self._write_lock, self.engine.begin() as conn:
                    result = work(conn)
            except ConcurrentChange as exc:
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
                return result
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        raise errors.Unavailable("the ledger database is unavailable or overloaded; retry later") from last


class ScaleMismatch(RuntimeError):
    """The process is configured with another scale than the ledger keeps for a currency."""


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

