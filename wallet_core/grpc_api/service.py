"""The Wallet gRPC service: authenticate, convert, call the Ledger, convert back.

No rule lives here. A domain error becomes its status through `errors.status_of`; any other
exception is logged and answered INTERNAL without detail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

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


class WalletService(wallet_pb2_grpc.WalletServicer):
    def __init__(self, ledger: Ledger, auth: Authenticator) -> None:
        self.ledger = ledger
        self.auth = auth

    # ---------------------------------------------------------------- plumbing

    def _call(self, context: grpc.ServicerContext, clients: Callable[[], list[str]], work: Callable[[], T]) -> T:
        try:
            metadata = dict(context.invocation_metadata() or ())
            grant = self.auth.grant_for(metadata.get("authorization"))
            for client in clients():
                self.auth.check(grant, client)
            return work()
        except domain_errors.WalletError as error:
            context.abort_with_status(status_of(error))
            raise  # unreachable: abort_with_status raises
        except Exception:
            log.exception("internal error; the call was answered INTERNAL")
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise

    # ---------------------------------------------------------------- accounts

    def OpenAccount(self, request: pb.OpenAccountRequest, context: grpc.ServicerContext) -> pb.OpenAccountResponse:
        def work() -> pb.OpenAccountResponse:
            view, created = self.ledger.open_account(convert.key_in(request.account))
            return pb.OpenAccountResponse(account=convert.account_out(view), created=created)

        return self._call(context, lambda: [request.account.client], work)

    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.GetBalanceResponse:
        return self._call(
            context, lambda: [request.account.client],
            lambda: pb.GetBalanceResponse(account=convert.account_out(self.ledger.get_balance(convert.key_in(request.account)))),
        )

    def SetAccountStatus(
        self, request: pb.SetAccountStatusRequest, context: grpc.ServicerContext
    ) -> pb.SetAccountStatusResponse:
        def work() -> pb.SetAccountStatusResponse:
            status = convert.enum_in(pb.AccountStatus, request.status, domain.AccountStatus, "status")
            view = self.ledger.set_account_status(convert.key_in(request.account), status)
            return pb.SetAccountStatusResponse(account=convert.account_out(view))

        return self._call(context, lambda: [request.account.client], work)

    # ---------------------------------------------------------------- money

    def Debit(self, request: pb.DebitRequest, context: grpc.ServicerContext) -> pb.DebitResponse:
        def work() -> pb.DebitResponse:
            result = self.ledger.debit(convert.debit_items_in(request))
            return pb.DebitResponse(
                transactions=[convert.transaction_out(t) for t in result.transactions], replayed=result.replayed,
            )

        return self._call(context, lambda: sorted({item.account.client for item in request.items}), work)

    def Credit(self, request: pb.CreditRequest, context: grpc.ServicerContext) -> pb.CreditResponse:
        def work() -> pb.CreditResponse:
            result = self.ledger.credit(convert.credit_in(request))
            return pb.CreditResponse(transaction=convert.transaction_out(result.transaction), replayed=result.replayed)

        return self._call(context, lambda: [request.account.client], work)

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> pb.CancelResponse:
        def work() -> pb.CancelResponse:
            result = self.ledger.cancel(request.client, request.transaction_id, request.reference)
            return pb.CancelResponse(
                outcome=convert.enum_out(pb.CancelOutcome, result.outcome),
                transaction=convert.transaction_out(result.transaction), replayed=result.replayed,
            )

        return self._call(context, lambda: [request.client], work)

    def Fence(self, request: pb.FenceRequest, context: grpc.ServicerContext) -> pb.FenceResponse:
        return self._call(
            context, lambda: [request.client],
            lambda: convert.fence_out(self.ledger.fence(request.client, list(request.transaction_ids), request.reference)),
        )

    # ---------------------------------------------------------------- reads

    def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: grpc.ServicerContext
    ) -> pb.ListTransactionsResponse:
        def work() -> pb.ListTransactionsResponse:
            if request.page_size < 0:
                raise domain_errors.InvalidArgument("page_size must not be negative")
            page = self.ledger.list_transactions(convert.key_in(request.account), request.page_size, request.page_token)
            return pb.ListTransactionsResponse(
                transactions=[convert.transaction_out(t) for t in page.transactions],
                next_page_token=page.next_page_token,
            )

        return self._call(context, lambda: [request.account.client], work)

    def ListSettlementFailures(
        self, request: pb.ListSettlementFailuresRequest, context: grpc.ServicerContext
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

        return self._call(context, lambda: [request.client], work)

