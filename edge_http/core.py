"""The way to the wallet core: the typed gRPC client, built from the settings, and a readiness probe.

gRPC's asyncio channels belong to the event loop they are made in, and the app is built
before the server's loop runs; so the client the app owns is made on first use, inside the
loop that serves requests (`LazyWallet`), and closed at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from clients import (
    Account,
    AccountRef,
    AsyncWalletClient,
    CorrectionResult,
    CreditResult,
    DebitItem,
    DebitResult,
    FenceResult,
    Purpose,
    SettleItem,
    SettleResult,
)
from clients.errors import Unauthenticated, WalletError
from edge_http import errors
from edge_http.config import EdgeSettings
from edge_http.port import WalletPort

log = logging.getLogger("edge_http.core")

READY_TIMEOUT = 1.0
PROBE_ACCOUNT = AccountRef("edge-readiness-probe", "0", "EUR")


def build_client(settings: EdgeSettings) -> AsyncWalletClient:
    """The client as the edge uses it: one attempt per call (the edge keeps its own deadline), its calls
    spread over `edge_core_channels` connections."""
    root_certificates = settings.core_tls_ca.read_bytes() if settings.core_tls_ca is not None else None
    kwargs: dict[str, Any] = {
        "token": settings.core_token,  # "" sends no token (never WALLET_TOKEN)
        "root_certificates": root_certificates,
        "timeout": settings.edge_core_attempt_timeout,
        "max_attempts": 1,
        "channels": settings.edge_core_channels,
    }
    if settings.core_tls:
        kwargs["tls"] = True
    return AsyncWalletClient(settings.core_addr, **kwargs)


class LazyWallet:
    """Stands for an AsyncWalletClient made on first use, in the running loop (a `WalletPort`)."""

    def __init__(self, settings: EdgeSettings) -> None:
        self._settings = settings
        self._client: AsyncWalletClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get(self) -> AsyncWalletClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # a new loop (e.g. one per simulated request in tests) needs its own channel
            self._client = build_client(self._settings)
            self._loop = loop
        return self._client

    async def debit(self, items: Sequence[DebitItem], *, timeout: float | None = None) -> DebitResult:
        return await self._get().debit(items, timeout=timeout)

    async def fence(
        self, client: str, transaction_ids: Sequence[str], *, reference: str = "", timeout: float | None = None
    ) -> FenceResult:
        return await self._get().fence(client, transaction_ids, reference=reference, timeout=timeout)

    async def credit(
        self, transaction_id: str, account: AccountRef, amount: str | Decimal | int, purpose: Purpose, *,
        settles_transaction_id: str = "", reference: str = "", timeout: float | None = None,
    ) -> CreditResult:
        return await self._get().credit(
            transaction_id, account, amount, purpose,
            settles_transaction_id=settles_transaction_id, reference=reference, timeout=timeout,
        )

    async def settle_batch(self, items: Sequence[SettleItem], *, timeout: float | None = None) -> list[SettleResult]:
        return await self._get().settle_batch(items, timeout=timeout)

    async def resettle(
        self, client: str, transaction_id: str, settles_transaction_id: str, amount: str | Decimal | int, *,
        reason: str = "", reference: str = "", timeout: float | None = None,
    ) -> CorrectionResult:
        return await self._get().resettle(client, transaction_id, settles_transaction_id, amount, reason=reason,
                                          reference=reference, timeout=timeout)

    async def get_balance(self, account: AccountRef, *, timeout: float | None = None) -> Account:
        return await self._get().get_balance(account, timeout=timeout)

    async def serving(self, *, timeout: float | None = None) -> bool:
        return await self._get().serving(timeout=timeout)

    async def close(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.close()


class Readiness:
    """Can the core serve this edge? Two cheap calls, within one second together.

    1. The core's health service (no token) says SERVING: it is up and reaches its database.
       NOT_SERVING (the database is down) is "not ready", whatever the second call says, since
       the probe below may be refused before the core touches its database.
    2. A cheap authenticated call: any answer of the core counts (the probe's account does not
       exist, or the token may not touch its client), except a refusal of the edge's own token:
       an edge whose token is refused cannot serve a single callback.
    """

    def __init__(self, wallet: WalletPort, timeout: float = READY_TIMEOUT) -> None:
        self._wallet = wallet
        self._timeout = timeout

    async def _probe(self) -> tuple[bool, str]:
        if not await self._wallet.serving():
            return False, "the wallet core cannot reach its database (health NOT_SERVING)"
        await self._wallet.get_balance(PROBE_ACCOUNT)
        return True, "the wallet core answers"

    async def check(self) -> tuple[bool, str]:
        try:
            return await asyncio.wait_for(self._probe(), self._timeout)
        except TimeoutError:
            return False, f"the wallet core did not answer within {self._timeout:g} s"
        except Unauthenticated as error:
            return False, f"the wallet core refuses the edge's token (WALLET_CORE_TOKEN): {errors.message_of(error)}"
        except WalletError as error:
            if errors.is_definite(error):
                return True, "the wallet core answers"
            return False, f"the wallet core is unavailable: {errors.reason_of(error)} {errors.message_of(error)}"
