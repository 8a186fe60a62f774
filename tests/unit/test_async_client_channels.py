"""`AsyncWalletClient(channels=N)` takes 1 to 64 connections; how many it opens is counted on a real
core in tests/integration/test_api.py."""

from __future__ import annotations

import pytest

from clients import AsyncWalletClient
from clients.aio import MAX_CHANNELS


@pytest.mark.parametrize("channels", [0, -1, MAX_CHANNELS + 1])
def test_a_number_of_channels_out_of_range_is_refused(channels: int) -> None:
    with pytest.raises(ValueError, match=f"channels must be 1 to {MAX_CHANNELS} .*, got {channels}"):
        AsyncWalletClient("127.0.0.1:1", token="", channels=channels)
