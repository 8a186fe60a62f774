"""The edge's typed port to the wallet core: the only calls the betflex use cases make.

`clients.AsyncWalletClient` satisfies it over gRPC (through `edge_http.core.LazyWallet`); the
deterministic simulation (tests/sim) satisfies it with a simulated network in front of the real
ledger rules. There is deliberately no reversing `cancel` here: the edge may fence an id whose
Debit's outcome it does not know, never reverse a stake (DESIGN §3, §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from clients import (
    Account,
    AccountRef,
    CorrectionResult,
    CreditResult,
    DebitItem,
    DebitResult,
    FenceResult,
    Purpose,
    SettleItem,
    SettleResult,
)


class WalletPort(Protocol):
    async def debit(self, items: Sequence[DebitItem], *, timeout: float | None = None) -> DebitResult: ...

    async def fence(
        self, client: str, transaction_ids: Sequence[str], *, reference: str = "", timeout: float | None = None
    ) -> FenceResult: ...

    async def credit(
        self, transaction_id: str, account: AccountRef, amount: str | Decimal | int, purpose: Purpose, *,
        settles_transaction_id: str = "", reference: str = "", timeout: float | None = None,
    ) -> CreditResult: ...

    async def settle_batch(
        self, items: Sequence[SettleItem], *, timeout: float | None = None
    ) -> list[SettleResult]: ...

    async def resettle(
        self, client: str, transaction_id: str, settles_transaction_id: str, amount: str | Decimal | int, *,
        reason: str = "", reference: str = "", timeout: float | None = None,
    ) -> CorrectionResult: ...

    async def get_balance(self, account: AccountRef, *, timeout: float | None = None) -> Account: ...

    async def serving(self, *, timeout: float | None = None) -> bool:
        """The core's health service: False while the core cannot reach its database (/readyz)."""
        ...
