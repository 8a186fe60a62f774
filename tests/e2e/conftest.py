from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from clients import AccountRef, WalletClient
from tests.support.servers import Core
from tests.support.stack import Edge, running_edge


@pytest.fixture
def edge(core: Core) -> Iterator[Edge]:
    with running_edge(core.target) as e:
        yield e


@pytest.fixture
def http(edge: Edge) -> Iterator[httpx.Client]:
    """betflex: an HTTP client with the edge's token."""
    with edge.client() as c:
        yield c


ALICE = AccountRef("fanteam", "1001", "EUR")
BOB = AccountRef("fanteam", "1002", "EUR")


@pytest.fixture
def funded(wallet: WalletClient) -> WalletClient:
    """Alice (uid 1001) holds 100.00 EUR, Bob (uid 1002) 10.00 EUR."""
    for ref, amount in ((ALICE, "100.00"), (BOB, "10.00")):
        wallet.open_account(ref)
        wallet.deposit(f"fund-{ref.user_id}", ref, amount)
    return wallet
