"""The Wallet gRPC service (grpc.aio): authenticate, convert, call the Ledger, convert back.

No rule lives here. A domain error becomes its status through `errors.status_of`; any other
exception is logged and answered INTERNAL without detail.

The betflex hot path, Debit and Fence, is awaited on the event loop: the call is validated
here and queued for the group committer, and the RPC's coroutine waits for its batch, with no
thread per call. Every other method (reads, accounts, credits, settlements, corrections) runs
the Ledger's blocking method on a worker thread (`asyncio.to_thread`, the loop's default
executor; at most `grpc_workers` threads), with the caller's context (trace, request id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from clients.wallet.v1 import wallet_pb2 as pb
from clients.wallet.v1 import wallet_pb2_grpc
from wallet_core import domain
from wallet_core import errors as domain_errors
from wallet_core.grpc_api import convert
from wallet_core.grpc_api.auth import Authenticator
from wallet_core.grpc_api.errors import status_of
from wallet_core.service import Ledger

log = logging.getLogger("wallet_core.grpc")
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]


class WalletService(wallet_pb2_grpc.WalletServicer):
    """`run_blocking` runs a Ledger method that blocks (default: on a worker thread); the
    deterministic simulation (tests/sim) runs them inline on its virtual loop."""

    def __init__(self, ledger: Ledger, auth: Authenticator, *, run_blocking: Blocking = asyncio.to_thread) -> None:
        self.ledger = ledger
        self.auth = auth
        self._run_blocking = run_blocking

    # ---------------------------------------------------------------- plumbing

    async def _call(self, context: Context, clients: Callable[[], list[str]],
                    work: Callable[[], Awaitable[T]]) -> T:
        try:
            grant = self.auth.grant_for(_authorization(context))
            for client in clients():
                self.auth.check(grant, client)
            return await work()
        except domain_errors.WalletError as error:
            await context.abort_with_status(status_of(error))
            raise  # unreachable: abort_with_status raises
        except Exception:
            log.exception("internal error; the call was answered INTERNAL")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise

    async def _blocking(self, context: Context, clients: Callable[[], list[str]],
                        work: Callable[[], T]) -> T:
        """`_call` for a Ledger method that blocks: it runs on a worker thread."""
        return await self._call(context, clients, lambda: self._run_blocking(work))

    # ---------------------------------------------------------------- accounts

    async def OpenAccount(self, request: pb.OpenAccountRequest, context: Context) -> pb.OpenAccountResponse:
        def work() -> pb.OpenAccountResponse:
            view, created = self.ledger.open_account(convert.key_in(request.account))
            return pb.OpenAccountResponse(account=convert.account_out(view), created=created)

        return await self._blocking(context, lambda: [request.account.client], work)

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        return await self._blocking(
            context, lambda: [request.account.client],
            lambda: pb.GetBalanceResponse(
                account=convert.account_out(self.ledger.get_balance(convert.key_in(request.account)))),
        )

    async def SetAccountStatus(
        self, request: pb.SetAccountStatusRequest, context: Context
    ) -> pb.SetAccountStatusResponse:
        def work() -> pb.SetAccountStatusResponse:
            status = convert.enum_in(pb.AccountStatus, request.status, domain.AccountStatus, "status")
            view = self.ledger.set_account_status(convert.key_in(request.account), status)
            return pb.SetAccountStatusResponse(account=convert.account_out(view))

        return await self._blocking(context, lambda: [request.account.client], work)

    # ---------------------------------------------------------------- money

    async def Debit(self, request: pb.DebitRequest, context: Context) -> pb.DebitResponse:
        async def work() -> pb.DebitResponse:
            items = convert.debit_items_in(request)
            note = self._note(context, items[0].purpose.value if items else "debit")
            result = await self.ledger.debit_async(items, audit=note)
            return pb.DebitResponse(
                transactions=[convert.transaction_out(t) for t in result.transactions], replayed=result.replayed,
            )

        return await self._call(context, lambda: sorted({item.account.client for item in request.items}), work)

    async def Credit(self, request: pb.CreditRequest, context: Context) -> pb.CreditResponse:
        def work() -> pb.CreditResponse:
            command = convert.credit_in(request)
            result = self.ledger.credit(command, audit=self._note(context, command.purpose.value))
            return pb.CreditResponse(transaction=convert.transaction_out(result.transaction), replayed=result.replayed)

        return await self._blocking(context, lambda: [request.account.client], work)

    async def SettleBatch(self, request: pb.SettleBatchRequest, context: Context) -> pb.SettleBatchResponse:
        return await self._blocking(
            context, lambda: sorted({item.account.client for item in request.items}),
            lambda: convert.settle_out(request, self.ledger.settle(convert.settle_items_in(request))),
        )

    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.CancelResponse:
        def work() -> pb.CancelResponse:
            result = self.ledger.cancel(request.client, request.transaction_id, request.reference,
                                        audit=self._note(context, "cancel"))
            return pb.CancelResponse(
                outcome=convert.enum_out(pb.CancelOutcome, result.outcome),
                transaction=convert.transaction_out(result.transaction), replayed=result.replayed,
            )

        return await self._blocking(context, lambda: [request.client], work)

    async def Fence(self, request: pb.FenceRequest, context: Context) -> pb.FenceResponse:
        async def work() -> pb.FenceResponse:
            return convert.fence_out(
                await self.ledger.fence_async(request.client, list(request.transaction_ids), request.reference))

        return await self._call(context, lambda: [request.client], work)

    # ---------------------------------------------------------------- reads

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: Context
    ) -> pb.ListTransactionsResponse:
        def work() -> pb.ListTransactionsResponse:
            if request.page_size < 0:
                raise domain_errors.InvalidArgument("page_size must not be negative")
            page = self.ledger.list_transactions(convert.key_in(request.account), request.page_size, request.page_token)
            return pb.ListTransactionsResponse(
                transactions=[convert.transaction_out(t) for t in page.transactions],
                next_page_token=page.next_page_token,
            )

        return await self._blocking(context, lambda: [request.account.client], work)

    async def ListSettlementFailures(
        self, request: pb.ListSettlementFailuresRequest, context: Context
    ) -> pb.ListSettlementFailuresResponse:
        def work() -> pb.ListSettlementFailuresResponse:
            if request.limit < 0:
                raise domain_errors.InvalidArgument("limit must not be negative")
            page = self.ledger.list_settlement_failures(
                request.client, request.include_resolved, request.limit, request.page_token)
            return pb.ListSettlementFailuresResponse(
                failures=[convert.failure_out(r) for r in page.failures],
                next_page_token=page.next_page_token,
            )

        return await self._blocking(context, lambda: [request.client], work)


    # ---------------------------------------------------------------- settlement corrections and operators

    def _actor(self, context: Context) -> str:
        """The label of the caller's token (already authenticated by `_call`), for the audit trail."""
        grant = self.auth.grant_for(_authorization(context))
        return grant.label if grant is not None and grant.label else "insecure-no-auth"

    def _note(self, context: Context, action: str, reason: str | None = None) -> domain.AuditNote | None:
        """An audit note when the call is an operator action: `reason` given, or metadata `wallet-reason-bin`."""
        if reason is None:
            for key, value in context.invocation_metadata() or ():
                if key == REASON_METADATA:
                    reason = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    break
            else:
                return None
        return domain.AuditNote(self._actor(context), action, reason)

    async def Unsettle(self, request: pb.UnsettleRequest, context: Context) -> pb.CorrectionResponse:
        def work() -> pb.CorrectionResponse:
            result = self.ledger.unsettle(
                request.client, request.transaction_id, request.settles_transaction_id, request.reference,
                policy=convert.clawback_in(request.clawback), audit=self._note(context, "unsettle", request.reason))
            return convert.correction_out(result)

        return await self._blocking(context, lambda: [request.client], work)

    async def Resettle(self, request: pb.ResettleRequest, context: Context) -> pb.CorrectionResponse:
        def work() -> pb.CorrectionResponse:
            result = self.ledger.resettle(
                request.client, request.transaction_id, request.settles_transaction_id, request.amount,
                request.reference, policy=convert.clawback_in(request.clawback),
                audit=self._note(context, "resettle", request.reason))
            return convert.correction_out(result)

        return await self._blocking(context, lambda: [request.client], work)

    async def LookupTransaction(
        self, request: pb.LookupTransactionRequest, context: Context
    ) -> pb.LookupTransactionResponse:
        return await self._blocking(context, lambda: [request.client], lambda: convert.lookup_out(
            self.ledger.lookup(request.client, request.transaction_id)))

    async def ResolveSettlementFailure(
        self, request: pb.ResolveSettlementFailureRequest, context: Context
    ) -> pb.ResolveSettlementFailureResponse:
        def work() -> pb.ResolveSettlementFailureResponse:
            resolution = convert.enum_in(pb.Resolution, request.resolution, domain.Resolution, "resolution")
            action = {"resolved": "resolve", "dismissed": "dismiss"}.get(resolution.value, resolution.value)
            note = self._note(context, action, request.reason)
            assert note is not None
            view = self.ledger.resolve_settlement_failure(request.client, request.transaction_id, resolution, note)
            return pb.ResolveSettlementFailureResponse(
                failure=convert.failure_out(view),
                resolution=convert.enum_out(
                    pb.Resolution, domain.Resolution(view.resolution) if view.resolution else None),
                resolved_by=view.resolved_by, resolution_note=view.resolution_note)

        return await self._blocking(context, lambda: [request.client], work)

    async def ListOpenStakes(
        self, request: pb.ListOpenStakesRequest, context: Context
    ) -> pb.ListOpenStakesResponse:
        def work() -> pb.ListOpenStakesResponse:
            if request.limit < 0:
                raise domain_errors.InvalidArgument("limit must not be negative")
            found = self.ledger.open_stakes(request.client, request.older_than_seconds, request.limit)
            return pb.ListOpenStakesResponse(
                stakes=[pb.OpenStake(stake=convert.transaction_out(s.transaction), age_seconds=s.age_seconds)
                        for s in found.stakes],
                totals=[pb.OpenStakeTotal(currency=t.currency, count=t.count, amount=t.amount) for t in found.totals])

        return await self._blocking(context, lambda: [request.client], work)

    async def GetSystemBalances(
        self, request: pb.GetSystemBalancesRequest, context: Context
    ) -> pb.GetSystemBalancesResponse:
        return await self._blocking(context, lambda: [request.client], lambda: pb.GetSystemBalancesResponse(balances=[
            pb.SystemBalance(currency=b.currency, kind=b.kind.value, balance=b.balance)
            for b in self.ledger.system_balances(request.client)]))

    async def ListAuditEntries(
        self, request: pb.ListAuditEntriesRequest, context: Context
    ) -> pb.ListAuditEntriesResponse:
        def work() -> pb.ListAuditEntriesResponse:
            if request.limit < 0:
                raise domain_errors.InvalidArgument("limit must not be negative")
            return pb.ListAuditEntriesResponse(
                entries=[convert.audit_out(a) for a in self.ledger.list_audit(request.client, request.limit)])

        return await self._blocking(context, lambda: [request.client], work)

    async def ListClients(self, request: pb.ListClientsRequest, context: Context) -> pb.ListClientsResponse:
        def work() -> pb.ListClientsResponse:
            grant = self.auth.grant_for(_authorization(context))
            clients = [c for c in self.ledger.list_clients() if grant is None or grant.allows(c)]
            return pb.ListClientsResponse(clients=clients, label=self._actor(context))

        return await self._blocking(context, list, work)


def _authorization(context: Context) -> str | None:
    """The `authorization` metadata (a text header: only `-bin` keys carry bytes)."""
    value = dict(context.invocation_metadata() or ()).get("authorization")
    return value if isinstance(value, str) else None


# the metadata that makes a Debit, Credit or Cancel an operator action: why, UTF-8 (binary metadata)
REASON_METADATA = "wallet-reason-bin"
