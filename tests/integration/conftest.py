from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients import WalletClient
from tests.support.servers import TOKENS, Core


@pytest.fixture
def other(core: Core) -> Iterator[WalletClient]:
    """A client whose token is allowed the client 'other' only."""
    with WalletClient(core.target, token=TOKENS["other"], timeout=10) as c:
        yield c
