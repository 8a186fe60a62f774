"""The asyncio client. Every call has a deadline and is retried on UNAVAILABLE (all are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any

import grpc
from tenacity import AsyncRetrying

from clients import _convert as c
from clients import models as m
from clients._channel import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, metadata, open_channel, retry_policy
from clients.errors import from_rpc_error
from clients.wallet.v1 import wallet_pb2_grpc

Amount = str | Decimal | int


class AsyncWalletClient:
    """`async with AsyncWalletClient(target, token=...) as wallet: await wallet.get_balance(ref)`.

    `token` defaults to the WALLET_TOKEN environment variable; pass "" to send none.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        root_certificates: bytes | None = None,
        tls: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_ATTEMPTS,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._channel = open_channel(target, tls=tls, root_certificates=root_certificates, options=options, aio=True)
        self._stub = wallet_pb2_grpc.WalletStub(self._channel)
        self._metadata = metadata(token)
        self._timeout = timeout
        self._retry = retry_policy(max_attempts)
        self._single_attempt = max_attempts == 1

    async def _do(self, spec: tuple[str, Any, Any], timeout: float | None) -> Any:
        method, request, parse = spec
        rpc = getattr(self._stub, method)
        if self._single_attempt:  # no retry machinery: tenacity costs tens of microseconds of CPU per call
            return parse(await self._once(rpc, request, timeout))
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:
                response = await self._once(rpc, request, timeout)
        return parse(response)

    async def _once(self, rpc: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await rpc(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # ---------------------------------------------------------------- accounts

    async def open_account(self, account: m.AccountRef, *, timeout: float | None = None) -> tuple[m.Account, bool]:
        return await self._do(c.open_account(account), timeout)  # type: ignore[no-any-return]

    async def get_balance(self, account: m.AccountRef, *, timeout: float | None = None) -> m.Account:
        return await self._do(c.get_balance(account), timeout)  # type: ignore[no-any-return]

    async def set_account_status(
        self, account: m.AccountRef, status: m.AccountStatus, *, timeout: float | None = None
    ) -> m.Account:
        return await self._do(c.set_account_status(account, status), timeout)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- money

    async def debit(self, items: Sequence[m.DebitItem], *, timeout: float | None = None) -> m.DebitResult:
        return await self._do(c.debit(items), timeout)  # type: ignore[no-any-return]

    async def credit(
        self, transaction_id: str, account: m.AccountRef, amount: Amount, purpose: m.Purpose, *,
        settles_transaction_id: str = "", reference: str = "", timeout: float | None = None,
    ) -> m.CreditResult:
        spec = c.credit(transaction_id, account, amount, purpose, settles_transaction_id, reference)
        return await self._do(spec, timeout)  # type: ignore[no-any-return]

    async def cancel(self, client: str, transaction_id: str, *, reference: str = "",
               timeout: float | None = None) -> m.CancelResult:
        return await self._do(c.cancel(client, transaction_id, reference), timeout)  # type: ignore[no-any-return]

    async def deposit(self, transaction_id: str, account: m.AccountRef, amount: Amount, *, reference: str = "",
                timeout: float | None = None) -> m.CreditResult:
        return await self.credit(transaction_id, account, amount, m.Purpose.DEPOSIT, reference=reference, timeout=timeout)

    async def withdraw(self, transaction_id: str, account: m.AccountRef, amount: Amount, *, reference: str = "",
                 timeout: float | None = None) -> m.DebitResult:
        item = m.DebitItem(transaction_id, account, amount, m.Purpose.WITHDRAWAL, reference)
        return await self.debit([item], timeout=timeout)

    async def payout(self, transaction_id: str, account: m.AccountRef, amount: Amount, settles_transaction_id: str, *,
               reference: str = "", timeout: float | None = None) -> m.CreditResult:
        return await self.credit(transaction_id, account, amount, m.Purpose.PAYOUT,
                           settles_transaction_id=settles_transaction_id, reference=reference, timeout=timeout)

    async def fence(self, client: str, transaction_ids: Sequence[str], *, reference: str = "",
              timeout: float | None = None) -> m.FenceResult:
        """Make the outcome of these ids final without moving money (see the Fence RPC)."""
        return await self._do(c.fence(client, transaction_ids, reference), timeout)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- reads

    async def list_transactions(self, account: m.AccountRef, page_size: int = 50, page_token: str = "", *,
                          timeout: float | None = None) -> m.TransactionPage:
        return await self._do(c.list_transactions(account, page_size, page_token), timeout)  # type: ignore[no-any-return]

    async def list_settlement_failures(self, client: str, include_resolved: bool = False, limit: int = 100, *,
                                 timeout: float | None = None) -> list[m.SettlementFailure]:
        spec = c.list_settlement_failures(client, include_resolved, limit)
        return await self._do(spec, timeout)  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncWalletClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()
