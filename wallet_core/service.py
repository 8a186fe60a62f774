"""The ledger's use cases: the only code that changes money. (Signatures; bodies being written.)"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import (
    AccountKey,
    AccountStatus,
    AccountView,
    CancelResult,
    CreditCommand,
    CreditResult,
    DebitItem,
    DebitResult,
    SettlementFailureView,
    TransactionPage,
)


class Ledger:
    """Thread-safe; one instance per process, shared by every gRPC worker thread.

    Every method raises a wallet_core.errors.WalletError subclass on refusal; database
    outages surface as errors.Unavailable after bounded retries.
    """

    def __init__(self, engine: Engine, currencies: CurrencyRegistry) -> None:
        self.engine = engine
        self.currencies = currencies

    def open_account(self, key: AccountKey) -> tuple[AccountView, bool]:
        """(the wallet, True if it was created by this call)."""
        raise NotImplementedError

    def get_balance(self, key: AccountKey) -> AccountView:
        raise NotImplementedError

    def debit(self, items: Sequence[DebitItem]) -> DebitResult:
        raise NotImplementedError

    def credit(self, command: CreditCommand) -> CreditResult:
        raise NotImplementedError

    def cancel(self, client: str, transaction_id: str, reference: str = "") -> CancelResult:
        raise NotImplementedError

    def list_transactions(self, key: AccountKey, page_size: int = 50, page_token: str = "") -> TransactionPage:
        raise NotImplementedError

    def set_account_status(self, key: AccountKey, status: AccountStatus) -> AccountView:
        raise NotImplementedError

    def list_settlement_failures(
        self, client: str, include_resolved: bool = False, limit: int = 100
    ) -> list[SettlementFailureView]:
        raise NotImplementedError
