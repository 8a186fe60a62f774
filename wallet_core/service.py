"""The ledger's use cases: the only code that changes money.

Layers: this module holds the use cases (validation, the rules that need the database, the
views returned to callers) and no SQL; wallet_core.book holds the rules of a batch, in plain
Python; wallet_core.storage holds the SQL: storage.unit_of_work every transaction and its
retries (`self.uow`), storage.repository a batch's load and write, storage.queries the rest
(wallets, reads, the operator queue).

Debit, Credit and Cancel are validated here, in the caller's thread, then applied as part of a
batch (wallet_core.committer: group commit; a lone call is a batch of one). A batch is one
database transaction (storage.unit_of_work), retried as a whole on serialization failures,
deadlocks, dropped connections and the unique-key race of two writers with one id:

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

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Engine, Row

from wallet_core import errors
from wallet_core.book import (
    Book,
    Call,
    CancelCall,
    CorrectionCall,
    CreditCall,
    DebitCall,
    Failure,
    FenceCall,
    Outcome,
    SettleCall,
    SettleOutcome,
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
    AuditNote,
    AuditView,
    CancelResult,
    ClawbackPolicy,
    CorrectionResult,
    CreditCommand,
    CreditResult,
    DebitItem,
    DebitResult,
    FenceResult,
    OpenStakes,
    OpenStakeTotal,
    OpenStakeView,
    Purpose,
    Resolution,
    SettleItem,
    SettlementFailurePage,
    SettlementFailureView,
    SystemBalanceView,
    TransactionLookup,
    TransactionPage,
    TransactionView,
    TxStatus,
    check_identifier,
    check_reference,
    credit_fingerprint,
    debit_fingerprint,
)
from wallet_core.money import check_amount_text
from wallet_core.storage import queries, repository
from wallet_core.storage.repository import aware
from wallet_core.storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

MAX_DEBIT_ITEMS = 100
MAX_SETTLE_ITEMS = 500
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_ROW_ID = 2**63 - 1  # BIGINT


def _now() -> datetime:
    return datetime.now(UTC)


class LedgerObserver(Protocol):
    """What an operator wants counted (wallet_core.grpc_api.observe turns it into metrics)."""

    def batch_committed(self, size: int, seconds: float) -> None: ...

    def database_retry(self, reason: str) -> None: ...

    def settlement_failures(self, count: int) -> None: ...


class _Unobserved:
    def batch_committed(self, size: int, seconds: float) -> None:
        pass

    def database_retry(self, reason: str) -> None:
        pass

    def settlement_failures(self, count: int) -> None:
        pass


class Ledger:
    """Thread-safe; one instance per process, shared by the gRPC event loop and its worker threads.

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
        clawback: dict[str, ClawbackPolicy] | None = None,
    ) -> None:
        self.engine = engine
        # client -> what a correction does when the wallet cannot cover a clawback; "*" for the rest
        self.clawback = {"*": ClawbackPolicy.REFUSE, **(clawback or {})}
        self.currencies = currencies
        self.clock = clock
        # every transaction of the ledger, with its retries (storage.unit_of_work)
        self.uow = UnitOfWork(engine, max_attempts=max_attempts)
        self._system_ids: dict[tuple[str, str], dict[AccountKind, int]] = {}
        self.observer: LedgerObserver = _Unobserved()
        self._committer: Committer[Call, Outcome] | None = (
            Committer(self._run_batch, max_batch=max_batch, max_wait=max_wait) if group_commit else None
        )

    def observe(self, observer: LedgerObserver) -> None:
        """Report batches, database retries and new settlement failures to `observer` from now on."""
        self.observer = observer
        self.uow.on_retry = observer.database_retry
        if self._committer is not None:
            self._committer.on_batch = observer.batch_committed

    def queue_depth(self) -> int:
        """Calls waiting for the group committer."""
        return self._committer.depth() if self._committer is not None else 0

    # ------------------------------------------------------------------ accounts

    def open_account(self, key: AccountKey) -> tuple[AccountView, bool]:
        """(the wallet, True if it was created by this call)."""
        key.validate()
        currency = self.currencies.get(key.currency)

        def work(conn: Connection) -> tuple[AccountView, bool]:
            row = queries.find_user(conn, key)
            if row is not None:
                return self._account_view(row, currency), False
            now = self.clock()
            self._check_scale(conn, currency, now)
            self._ensure_system_accounts(conn, key.client, key.currency, now)
            queries.insert_account(conn, key.client, AccountKind.USER, key.user_id, key.currency, now)
            row = queries.find_user(conn, key)
            assert row is not None
            return self._account_view(row, currency), True

        return self.uow.write(work)

    def get_balance(self, key: AccountKey) -> AccountView:
        key.validate()
        currency = self.currencies.get(key.currency)
        with self.uow.read() as conn:
            row = queries.find_user(conn, key)
        if row is None:
            raise not_found(key)
        return self._account_view(row, currency)

    def set_account_status(self, key: AccountKey, status: AccountStatus) -> AccountView:
        key.validate()
        currency = self.currencies.get(key.currency)
        status = AccountStatus(status)

        def work(conn: Connection) -> AccountView:
            row = queries.find_user(conn, key, lock=True)
            if row is None:
                raise not_found(key)
            queries.set_account_status(conn, row.id, status)
            row = queries.find_user(conn, key)
            assert row is not None
            return self._account_view(row, currency)

        return self.uow.write(work)

    # ------------------------------------------------------------------ money calls

    def debit(self, items: Sequence[DebitItem], *, audit: AuditNote | None = None) -> DebitResult:
        """Apply every item or none. Items of one call share a client and have distinct ids."""
        return self._submit(self._debit_call(items, audit))  # type: ignore[return-value]

    async def debit_async(self, items: Sequence[DebitItem], *, audit: AuditNote | None = None) -> DebitResult:
        """`debit` for a coroutine: validated here, awaited without a thread of its own."""
        return await self._submit_async(self._debit_call(items, audit))  # type: ignore[return-value]

    def _debit_call(self, items: Sequence[DebitItem], audit: AuditNote | None) -> DebitCall:
        parsed = self._validate_debit(items)
        batch_ids = tuple(sorted(item.transaction_id for item, _, _ in parsed))
        hashes = [debit_fingerprint(item, minor, batch_ids) for item, _, minor in parsed]
        return DebitCall(parsed, hashes, audit)

    def credit(self, command: CreditCommand, *, audit: AuditNote | None = None) -> CreditResult:
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
        call = CreditCall(command, currency, minor, credit_fingerprint(command, minor), audit)
        return self._submit(call)  # type: ignore[return-value]

    def settle(self, items: Sequence[SettleItem]) -> list[SettleOutcome]:
        """Many PAYOUT credits of one client, each judged on its own, in one database transaction.

        Each item's outcome is its CreditResult (a replay of an earlier settlement included) or
        its refusal, in order; a refused item is kept in the settlement-failure queue. Only what
        concerns the call as a whole raises: no items, too many, several clients, repeated ids."""
        if not items:
            raise errors.InvalidArgument("a settlement batch needs at least one item")
        if len(items) > MAX_SETTLE_ITEMS:
            raise errors.InvalidArgument(f"a settlement batch takes at most {MAX_SETTLE_ITEMS} items, got {len(items)}")
        clients = {item.command.account.client for item in items}
        if len(clients) > 1:
            raise errors.InvalidArgument("all items of a settlement batch must belong to the same client")
        check_identifier("items[0].account.client", next(iter(clients)))
        if len({item.command.transaction_id for item in items}) != len(items):
            raise errors.InvalidArgument("the items of a settlement batch must have distinct transaction ids")
        calls: list[CreditCall | errors.WalletError] = []
        for item in items:
            try:
                calls.append(self._settle_call(item))
            except errors.WalletError as refusal:
                self._note_settlement_failure(item.command, refusal)
                calls.append(refusal)
        outcomes: list[SettleOutcome] = list(calls)  # type: ignore[arg-type]
        pending = self._replays(calls, outcomes)
        if pending:
            settled = self._submit(SettleCall([calls[n] for n in pending]))
            for n, outcome in zip(pending, settled, strict=True):  # type: ignore[arg-type]
                outcomes[n] = outcome
        return outcomes

    def _replays(self, calls: list[CreditCall | errors.WalletError], outcomes: list[SettleOutcome]) -> list[int]:
        """Answer from one read the items settled before with the same content (an applied payout never
        changes); the positions of the rest, which go to a batch. A redelivered /winners costs one SELECT."""
        credits = {n: call for n, call in enumerate(calls) if isinstance(call, CreditCall)}
        if not credits:
            return []
        names = {(c.command.account.client, c.command.transaction_id) for c in credits.values()}
        with self.uow.read() as conn:
            rows = repository.transactions_named(conn, names)
            found = {(t.client, t.transaction_id): t for t in map(repository.tx_from_row, rows)}
        pending = []
        for n, call in credits.items():
            tx = found.get((call.command.account.client, call.command.transaction_id))
            if tx is not None and tx.request_hash == call.request_hash and tx.status == TxStatus.APPLIED:
                outcomes[n] = CreditResult(transaction_view(self.currencies, tx), replayed=True)
            else:
                pending.append(n)
        return pending

    def _settle_call(self, item: SettleItem) -> CreditCall:
        command = item.command
        if command.purpose != Purpose.PAYOUT:
            raise errors.InvalidArgument("every item of a settlement batch is a PAYOUT")
        check_identifier("transaction_id", command.transaction_id)
        command.account.validate()
        check_reference(command.reference)
        check_identifier("settles_transaction_id", command.settles_transaction_id)
        currency = self.currencies.get(command.account.currency)
        minor = currency.parse(command.amount)
        stake_minor = currency.parse(item.stake_amount, field="stake_amount") if item.stake_amount else None
        if stake_minor == 0:
            raise errors.InvalidAmount("stake_amount must be greater than zero (a stake is never zero)")
        cap_minor = currency.parse(item.payout_cap, field="payout_cap") if item.payout_cap else None
        if cap_minor is not None and not command.reference:
            raise errors.InvalidArgument("a payout_cap needs a reference: the group of payouts it caps")
        return CreditCall(command, currency, minor, credit_fingerprint(command, minor),
                          stake_minor=stake_minor, cap_minor=cap_minor)

    def cancel(self, client: str, transaction_id: str, reference: str = "", *,
               audit: AuditNote | None = None) -> CancelResult:
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        check_reference(reference)
        return self._submit(CancelCall(client, transaction_id, reference, audit))  # type: ignore[return-value]

    def unsettle(self, client: str, transaction_id: str, stake_id: str, reference: str = "", *,
                 policy: ClawbackPolicy | None = None, audit: AuditNote | None = None) -> CorrectionResult:
        """Reverse a settled stake's settlement: its payout is clawed back and the stake is open again.

        Idempotent by `transaction_id`. What the wallet cannot cover follows `policy`, else the
        client's configured clawback policy (WALLET_CLAWBACK).
        """
        return self._correct(client, transaction_id, stake_id, None, reference, policy, audit)

    def resettle(self, client: str, transaction_id: str, stake_id: str, amount: str, reference: str = "", *,
                 policy: ClawbackPolicy | None = None, audit: AuditNote | None = None) -> CorrectionResult:
        """Replace a settled stake's payout with `amount`, atomically (the stake stays settled)."""
        check_amount_text(amount)  # its scale is the stake's currency's, checked once the stake is loaded
        return self._correct(client, transaction_id, stake_id, amount, reference, policy, audit)

    def clawback_policy(self, client: str) -> ClawbackPolicy:
        return self.clawback.get(client, self.clawback["*"])

    def _correct(self, client: str, transaction_id: str, stake_id: str, amount: str | None, reference: str,
                 policy: ClawbackPolicy | None, audit: AuditNote | None) -> CorrectionResult:
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        check_identifier("settles_transaction_id", stake_id)
        check_reference(reference)
        check_audit(audit)
        call = CorrectionCall(client, transaction_id, stake_id, amount, reference,
                              policy or self.clawback_policy(client), audit)
        return self._submit(call)  # type: ignore[return-value]

    def fence(self, client: str, transaction_ids: Sequence[str], reference: str = "") -> FenceResult:
        """Make the fate of each id final without moving money: tombstone the unknown ones, report the rest.

        For a caller whose Debit's outcome is unknown (its deadline passed): afterwards every id is
        either APPLIED (the debit happened), REFUSED or FENCED (it never will). Never reverses anything.
        """
        return self._submit(self._fence_call(client, transaction_ids, reference))  # type: ignore[return-value]

    async def fence_async(self, client: str, transaction_ids: Sequence[str], reference: str = "") -> FenceResult:
        """`fence` for a coroutine."""
        return await self._submit_async(self._fence_call(client, transaction_ids, reference))  # type: ignore[return-value]

    def _fence_call(self, client: str, transaction_ids: Sequence[str], reference: str) -> FenceCall:
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
        return FenceCall(client, tuple(transaction_ids), reference)

    def check_currencies(self) -> None:
        """The start-up check: every currency of the ledger has the scale this process is configured with.

        Raises ScaleMismatch naming each currency and both scales. A currency the ledger uses but
        has no scale for (a ledger from before scales were recorded) gets this process's scale.
        """
        def work(conn: Connection) -> list[str]:
            now = self.clock()
            used = queries.currencies_in_use(conn)
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

        problems = self.uow.write(work)
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
        if self._committer is not None:
            outcome = self._committer.submit(call)
        else:  # without group commit every call is a batch of one, observed the same way
            started = time.perf_counter()
            try:
                outcome = self._run_batch([call])[0]
            finally:
                self.observer.batch_committed(1, time.perf_counter() - started)
        if isinstance(outcome, errors.WalletError):
            raise outcome
        return outcome

    async def _submit_async(self, call: Call) -> Outcome:
        if self._committer is None:  # without group commit a call is a batch of one, on a thread of its own
            return await asyncio.to_thread(self._submit, call)
        outcome = await self._committer.submit_async(call)
        if isinstance(outcome, errors.WalletError):
            raise outcome
        return outcome

    def _run_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        def work(conn: Connection) -> list[Outcome]:
            book = Book(self.currencies, self.clock(), lambda c, cur: self._system_accounts(conn, c, cur))
            repository.load(conn, book, calls)
            outcomes = [book.apply(call) for call in calls]
            repository.write(conn, book)
            failures[0] = len(book.failures)
            return outcomes

        failures = [0]
        try:
            outcomes: list[Outcome] = self.uow.write(work)
            if failures[0]:
                self.observer.settlement_failures(failures[0])
            return outcomes
        except errors.WalletError:
            raise
        except Exception:
            if len(calls) == 1:
                raise
            # something unexpected: run each call alone, so that only the culprit fails
            log.exception("a batch of %d calls failed; running them one by one", len(calls))
            outcomes = []
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
            self.uow.write(lambda conn: repository.record_failures(conn, self.clock(), [Failure(command, refusal)]))
            self.observer.settlement_failures(1)
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
        with self.uow.read() as conn:
            user = queries.find_user(conn, key)
            if user is None:
                raise not_found(key)
            rows = queries.history(conn, user.id, page_size + 1, before)
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = _encode_page_token(rows[-1].id) if more else ""
        return TransactionPage(
            [transaction_view(self.currencies, repository.tx_from_row(r), r.stake_state) for r in rows], token)

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
        with self.uow.read() as conn:
            rows = queries.settlement_failures_page(conn, client, include_resolved, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        token = _encode_page_token(rows[-1].id) if more else ""
        return SettlementFailurePage([_failure_view(r) for r in rows], token)

    # ------------------------------------------------------------------ operators

    def resolve_settlement_failure(self, client: str, transaction_id: str, resolution: Resolution,
                                   audit: AuditNote) -> SettlementFailureView:
        """Close an open entry of the failed-settlement queue as RESOLVED or DISMISSED, with who and why.

        The queue change and its audit row are one transaction. An entry already closed the same
        way is a replay (nothing changes); closed another way, it is refused (NOT_FOUND if absent).
        """
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        resolution = Resolution(resolution)
        if resolution == Resolution.SETTLED:
            raise errors.InvalidArgument("an operator resolves or dismisses; 'settled' is set by a successful call")
        check_audit(audit)
        if not audit.reason.strip():
            raise errors.InvalidArgument("a reason is required to resolve or dismiss a failed settlement")

        def work(conn: Connection) -> SettlementFailureView:
            row = queries.settlement_failure(conn, client, transaction_id, lock=True)
            if row is None:
                raise errors.StakeNotFound(
                    f"no failed settlement {transaction_id!r} for client {client!r}", transaction_id=transaction_id)
            now = self.clock()
            outcome = "applied"
            if row.resolved_at is not None:
                if row.resolution != resolution:
                    raise errors.InvalidArgument(
                        f"failed settlement {transaction_id!r} is already closed ({row.resolution or 'settled'})")
                outcome = "replayed"
            else:
                queries.close_settlement_failure(conn, client, transaction_id, resolution, audit, now)
            queries.record_operator_action(conn, now, client, audit, transaction_id, row.settles_transaction_id,
                                           outcome)
            found = queries.settlement_failure(conn, client, transaction_id)
            assert found is not None
            return _failure_view(found)

        return self.uow.write(work)

    def lookup(self, client: str, transaction_id: str) -> TransactionLookup:
        """A transaction and, for a stake, its settlements, cancels, corrections, refusals and operator actions."""
        check_identifier("client", client)
        check_identifier("transaction_id", transaction_id)
        with self.uow.read() as conn:
            row = queries.transaction_with_stake(conn, client, transaction_id)
            # the stake it is about: itself, or the stake a payout / correction names
            stake_id = transaction_id if row is None or not row.target_id else row.target_id
            related = queries.transactions_targeting(conn, client, stake_id)
            names = {transaction_id, stake_id} | {r.transaction_id for r in related if r.transaction_id}
            failures = queries.settlement_failures_naming(conn, client, names)
            trail = queries.audit_naming(conn, client, names)
            stake_row = row if row is not None and not row.target_id else queries.transaction_with_stake(
                conn, client, stake_id)

        def view(r: Row[Any], state: str | None = None) -> TransactionView:
            return transaction_view(self.currencies, repository.tx_from_row(r), state)

        story = []
        if stake_row is not None and row is not None and stake_row.id != row.id:
            story.append(view(stake_row, stake_row.stake_state))
        story += [view(r) for r in related if row is None or r.id != row.id]
        if row is None and not story and not failures and not trail:
            raise errors.StakeNotFound(f"no transaction {transaction_id!r} for client {client!r}",
                                       transaction_id=transaction_id)
        return TransactionLookup(
            transaction=view(row, row.stake_state) if row is not None else None,
            related=story, failures=[_failure_view(f) for f in failures], audit=[_audit_view(a) for a in trail],
        )

    def open_stakes(self, client: str, older_than_seconds: int = 0, limit: int = 100) -> OpenStakes:
        """Stakes still open after `older_than_seconds` (bets the sportsbook never settled), oldest first."""
        check_identifier("client", client)
        if older_than_seconds < 0:
            raise errors.InvalidArgument("older_than must not be negative")
        limit = min(max(limit, 1) if limit else 100, 1000)
        now = self.clock()
        cutoff = now - timedelta(seconds=older_than_seconds)
        with self.uow.read() as conn:
            rows = queries.open_stakes(conn, client, cutoff, limit)
            sums = queries.open_stake_totals(conn, client, cutoff)
        views = []
        for r in rows:
            tx = repository.tx_from_row(r)
            views.append(OpenStakeView(transaction_view(self.currencies, tx, "open"),
                                       max(int((now - tx.created_at).total_seconds()), 0)))
        totals = [OpenStakeTotal(client, s_.currency, s_.n, self._format(s_.currency, int(s_.total))) for s_ in sums]
        return OpenStakes(views, totals)

    def system_balances(self, client: str) -> list[SystemBalanceView]:
        """The client's system accounts (in_play, house, cashier, receivable) in every currency."""
        check_identifier("client", client)
        with self.uow.read() as conn:
            rows = queries.system_balances(conn, client)
        return [SystemBalanceView(client, r.currency, AccountKind(r.kind), self._format(r.currency, r.balance))
                for r in rows]

    def list_audit(self, client: str, limit: int = 100) -> list[AuditView]:
        """The client's operator actions, newest first."""
        check_identifier("client", client)
        limit = min(max(limit, 1) if limit else 100, 1000)
        with self.uow.read() as conn:
            rows = queries.audit_entries(conn, client, limit)
        return [_audit_view(r) for r in rows]

    def list_clients(self) -> list[str]:
        """Every client with a wallet in the ledger."""
        with self.uow.read() as conn:
            return queries.clients(conn)

    def _format(self, currency: str, minor: int) -> str:
        scale = self.currencies.get(currency).scale if currency in self.currencies else 0
        return Currency(currency, scale).format(minor)

    # ------------------------------------------------------------------ accounts' rules

    def _ensure_system_accounts(self, conn: Connection, client: str, currency: str, now: datetime) -> None:
        have = queries.system_account_kinds(conn, client, currency)
        for kind in SYSTEM_KINDS:
            if kind not in have:
                queries.insert_account(conn, client, kind, "", currency, now)

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
        ids = queries.system_account_ids(conn, client, currency)
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

    # ------------------------------------------------------------------ the database

    def ping(self) -> None:
        """Can the ledger reach its database now? Raises if not (for the health watcher; UnitOfWork.ping)."""
        self.uow.ping()


def check_audit(audit: AuditNote | None) -> None:
    if audit is not None and len(audit.reason) > 512:
        raise errors.InvalidArgument("reason is longer than 512 characters")


def _failure_view(r: Row[Any]) -> SettlementFailureView:
    return SettlementFailureView(
        client=r.client, transaction_id=r.transaction_id, settles_transaction_id=r.settles_transaction_id,
        account=AccountKey(r.client, r.user_id, r.currency), amount=r.amount, reason=r.reason,
        message=r.message, attempts=r.attempts, first_seen=aware(r.first_seen),
        last_seen=aware(r.last_seen), resolved_at=aware(r.resolved_at) if r.resolved_at else None,
        resolution=r.resolution or "", resolved_by=r.resolved_by or "", resolution_note=r.resolution_note or "",
    )


def _audit_view(r: Row[Any]) -> AuditView:
    return AuditView(id=r.id, at=aware(r.at), client=r.client, actor=r.actor, action=r.action,
                     transaction_id=r.transaction_id, target=r.target, reason=r.reason, outcome=r.outcome)


class ScaleMismatch(RuntimeError):
    """The process is configured with another scale than the ledger keeps for a currency."""


def _encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def _decode_page_token(token: str) -> int | None:
    """The id a page token names; any token this service did not issue is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        version, _, value = decoded.partition(":")
        # ASCII digits only ("٣".isdigit() is True), and an id a BIGINT column can hold
        if version != "v1" or not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError
        last_id = int(value)
        if not 0 < last_id <= MAX_ROW_ID:
            raise ValueError
        return last_id
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise errors.InvalidArgument("page_token is not one this service issued") from None
