"""Typed Python client of the wallet gRPC API (protos/wallet/v1/wallet.proto), sync and asyncio.

    from clients import AccountRef, WalletClient
    with WalletClient("127.0.0.1:50051", token=token) as wallet:
        wallet.deposit("dep-1", AccountRef("fanteam", "1001", "EUR"), "100.00")

Money is `Decimal` (or a decimal string) and never a float; each error reason of the API is
one exception class in `clients.errors`; every call has a deadline (`timeout`, 5 s by default)
and is retried with backoff on UNAVAILABLE, which is safe because every call is idempotent.
The generated stubs are `clients.wallet.v1.wallet_pb2` and `wallet_pb2_grpc`.
"""

from clients._channel import call_metadata
from clients.aio import AsyncWalletClient
from clients.models import (
    Account,
    AccountRef,
    AccountStatus,
    CancelOutcome,
    CancelResult,
    ClawbackPolicy,
    CorrectionResult,
    CreditResult,
    DebitItem,
    DebitResult,
    FencedId,
    FenceOutcome,
    FenceResult,
    Purpose,
    Resolution,
    SettleItem,
    SettlementFailure,
    SettlementFailurePage,
    SettleResult,
    StakeState,
    Transaction,
    TransactionPage,
    TransactionStatus,
)
from clients.sync import WalletClient

__all__ = [
    "Account",
    "AccountRef",
    "AccountStatus",
    "AsyncWalletClient",
    "CancelOutcome",
    "CancelResult",
    "ClawbackPolicy",
    "CorrectionResult",
    "CreditResult",
    "DebitItem",
    "DebitResult",
    "FenceOutcome",
    "FenceResult",
    "FencedId",
    "Purpose",
    "Resolution",
    "SettleItem",
    "SettleResult",
    "SettlementFailure",
    "SettlementFailurePage",
    "StakeState",
    "Transaction",
    "TransactionPage",
    "TransactionStatus",
    "WalletClient",
    "call_metadata",
]
