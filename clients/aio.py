"""The asyncio client. Every call has a deadline and is retried on UNAVAILABLE (all are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import cycle
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import AsyncRetrying

from clients import _convert as c
from clients import models as m
from clients._channel import CALL_METADATA, DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, metadata, open_channel, retry_policy
from clients.errors import from_rpc_error
from clients.wallet.v1 import wallet_pb2, wallet_pb2_grpc

Amount = str | Decimal | int
T = TypeVar("T")
MAX_CHANNELS = 64
# each channel its own subchannel, hence its own connection (gRPC shares one per target otherwise)
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


class AsyncWalletClient:
    """`async with AsyncWalletClient(target, token=...) as wallet: await wallet.get_balance(ref)`.

    `token` defaults to the WALLET_TOKEN environment variable; pass "" to send none. With
    `channels` > 1 the client holds that many channels, each on its own connection, and sends
    each call on the next one (round-robin): a core of several processes on one port
    (`wallet core --workers N`) gets its connections, not its calls, spread by the kernel.
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
        channels: int = 1,
    ) -> None:
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be 1 to {MAX_CHANNELS} (connections to the core), got {channels}")
        if channels > 1:
            options = [*options, OWN_CONNECTION]
        self._channels = [
            open_channel(target, tls=tls, root_certificates=root_certificates, options=options, aio=True)
            for _ in range(channels)
        ]
        self._channel = self._channels[0]  # the health check's
        self._stub = wallet_pb2_grpc.WalletStub(self._channel)
        # one event loop calls it: a plain iterator is the round-robin, no lock needed
        self._stubs = cycle([wallet_pb2_grpc.WalletStub(ch) for ch in self._channels]) if channels > 1 else None
        self._metadata = metadata(token)
        self._timeout = timeout
        self._retry = retry_policy(max_attempts)
        self._single_attempt = max_attempts == 1

    async def _do(self, spec: c.Spec[T], timeout: float | None) -> T:
        call_metadata = self._metadata + spec.metadata + CALL_METADATA.get()
        if self._single_attempt:  # no retry machinery: tenacity costs tens of microseconds of CPU per call
            rpc = getattr(self._stub if self._stubs is None else next(self._stubs), spec.method)
            return spec.parse(await self._once(rpc, spec.request, timeout, call_metadata))
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:  # each attempt on the next channel: a retry may find another core process
                rpc = getattr(self._stub if self._stubs is None else next(self._stubs), spec.method)
                response = await self._once(rpc, spec.request, timeout, call_metadata)
        return spec.parse(response)

    async def _once(
        self, rpc: Any, request: Any, timeout: float | None, metadata: tuple[tuple[str, str | bytes], ...]
    ) -> Any:
        try:
            return await rpc(request, timeout=timeout or self._timeout, metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # ---------------------------------------------------------------- accounts

    async def open_account(self, account: m.AccountRef, *, timeout: float | None = None) -> tuple[m.Account, bool]:
        return await self._do(c.open_account(account), timeout)

    async def get_balance(self, account: m.AccountRef, *, timeout: float | None = None) -> m.Account:
        return await self._do(c.get_balance(account), timeout)

    async def set_account_status(
        self, account: m.AccountRef, status: m.AccountStatus, *, timeout: float | None = None
    ) -> m.Account:
        return await self._do(c.set_account_status(account, status), timeout)

    # ---------------------------------------------------------------- money

    async def debit(self, items: Sequence[m.DebitItem], *, timeout: float | None = None) -> m.DebitResult:
        return await self._do(c.debit(items), timeout)

    async def credit(
        self, transaction_id: str, account: m.AccountRef, amount: Amount, purpose: m.Purpose, *,
        settles_transaction_id: str = "", reference: str = "", timeout: float | None = None,
    ) -> m.CreditResult:
        spec = c.credit(transaction_id, account, amount, purpose, settles_transaction_id, reference)
        return await self._do(spec, timeout)

    async def settle_batch(
        self, items: Sequence[m.SettleItem], *, timeout: float | None = None
    ) -> list[m.SettleResult]:
        """Settle many stakes, each payout on its own, in one core transaction (see the SettleBatch RPC)."""
        return await self._do(c.settle_batch(items), timeout)

    async def cancel(self, client: str, transaction_id: str, *, reference: str = "",
               timeout: float | None = None) -> m.CancelResult:
        return await self._do(c.cancel(client, transaction_id, reference), timeout)

    async def deposit(self, transaction_id: str, account: m.AccountRef, amount: Amount, *, reference: str = "",
                timeout: float | None = None) -> m.CreditResult:
        return await self.credit(transaction_id, account, amount, m.Purpose.DEPOSIT, reference=reference,
                                 timeout=timeout)

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
        return await self._do(c.fence(client, transaction_ids, reference), timeout)

    # ---------------------------------------------------------------- reads

    async def list_transactions(self, account: m.AccountRef, page_size: int = 50, page_token: str = "", *,
                          timeout: float | None = None) -> m.TransactionPage:
        return await self._do(c.list_transactions(account, page_size, page_token), timeout)

    async def list_settlement_failures(self, client: str, include_resolved: bool = False, limit: int = 100,
                                 page_token: str = "", *,
                                 timeout: float | None = None) -> m.SettlementFailurePage:
        """One page of refused payouts, newest first; pass next_page_token back for the next."""
        spec = c.list_settlement_failures(client, include_resolved, limit, page_token)
        return await self._do(spec, timeout)

    # ---------------------------------------------------------------- health

    async def serving(self, *, timeout: float | None = None) -> bool:
        """Does the core say it can serve Wallet calls now (the standard gRPC health service)?

        False while the core cannot reach its database; no token is needed. A core that cannot
        be reached raises, like any call.
        """
        request = health_pb2.HealthCheckRequest(service=wallet_pb2.DESCRIPTOR.services_by_name["Wallet"].full_name)
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            # types-grpcio-health-checking declares the stub without its methods
            reply = await stub.Check(request, timeout=timeout or self._timeout)  # type: ignore[attr-defined]
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    # ---------------------------------------------------------------- operators (audited: who, when, why)

    async def adjust(self, transaction_id: str, account: m.AccountRef, amount: Amount, reason: str, *,
               reference: str = "", timeout: float | None = None) -> m.CreditResult:
        """An ADJUSTMENT credit (house -> user), recorded in the audit trail with `reason` (required)."""
        if not reason.strip():
            raise ValueError("an adjustment needs a reason")
        spec = c.credit(transaction_id, account, amount, m.Purpose.ADJUSTMENT, "", reference)
        return await self._do(c.with_reason(spec, reason), timeout)

    async def operator_credit(self, transaction_id: str, account: m.AccountRef, amount: Amount, purpose: m.Purpose,
                        reason: str, *, settles_transaction_id: str = "", reference: str = "",
                        timeout: float | None = None) -> m.CreditResult:
        """A Credit recorded in the audit trail with `reason` (an operator's deposit or settlement)."""
        spec = c.credit(transaction_id, account, amount, purpose, settles_transaction_id, reference)
        return await self._do(c.with_reason(spec, reason), timeout)

    async def operator_withdraw(self, transaction_id: str, account: m.AccountRef, amount: Amount, reason: str, *,
                          reference: str = "", timeout: float | None = None) -> m.DebitResult:
        """A withdrawal recorded in the audit trail with `reason`."""
        item = m.DebitItem(transaction_id, account, amount, m.Purpose.WITHDRAWAL, reference)
        return await self._do(c.with_reason(c.debit([item]), reason), timeout)

    async def operator_cancel(self, client: str, transaction_id: str, reason: str, *, reference: str = "",
                        timeout: float | None = None) -> m.CancelResult:
        """A Cancel recorded in the audit trail with `reason`."""
        spec = c.with_reason(c.cancel(client, transaction_id, reference), reason)
        return await self._do(spec, timeout)

    async def unsettle(self, client: str, transaction_id: str, settles_transaction_id: str, *, reason: str = "",
                 reference: str = "", clawback: m.ClawbackPolicy | None = None,
                 timeout: float | None = None) -> m.CorrectionResult:
        """Reverse a settled stake's settlement (payout clawed back, stake open again); idempotent by its id."""
        spec = c.unsettle(client, transaction_id, settles_transaction_id, reason, reference, clawback)
        return await self._do(spec, timeout)

    async def resettle(self, client: str, transaction_id: str, settles_transaction_id: str, amount: Amount, *,
                 reason: str = "", reference: str = "", clawback: m.ClawbackPolicy | None = None,
                 timeout: float | None = None) -> m.CorrectionResult:
        """Replace a settled stake's payout with `amount`, atomically; idempotent by its id."""
        spec = c.resettle(client, transaction_id, settles_transaction_id, amount, reason, reference, clawback)
        return await self._do(spec, timeout)

    async def lookup_transaction(self, client: str, transaction_id: str, *,
                           timeout: float | None = None) -> m.TransactionLookup:
        return await self._do(c.lookup_transaction(client, transaction_id), timeout)

    async def resolve_settlement_failure(self, client: str, transaction_id: str, resolution: m.Resolution, reason: str,
                                   *, timeout: float | None = None) -> m.ResolvedFailure:
        spec = c.resolve_settlement_failure(client, transaction_id, resolution, reason)
        return await self._do(spec, timeout)

    async def list_open_stakes(self, client: str, older_than_seconds: int = 0, limit: int = 100, *,
                         timeout: float | None = None) -> m.OpenStakes:
        return await self._do(c.list_open_stakes(client, older_than_seconds, limit), timeout)

    async def system_balances(self, client: str, *, timeout: float | None = None) -> list[m.SystemBalance]:
        return await self._do(c.system_balances(client), timeout)

    async def list_audit(self, client: str, limit: int = 100, *, timeout: float | None = None) -> list[m.AuditEntry]:
        return await self._do(c.list_audit(client, limit), timeout)

    async def list_clients(self, *, timeout: float | None = None) -> m.ClientList:
        """The clients with wallets this token may act for, and the token's label."""
        return await self._do(c.list_clients(), timeout)

    # ---------------------------------------------------------------- lifecycle

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> AsyncWalletClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()
