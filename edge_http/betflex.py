"""How betflex's identifiers become the wallet's: one place, so /bets and /winners always agree.

betflex numbers a bet slip once (`bet.uid`); the stake it places and the payout that settles
it get transaction ids derived from that number and the client, so every redelivery of a
callback names the same transactions and the core's idempotency makes it harmless.

The core refuses identifiers longer than `MAX_ID_LENGTH`, so the longest client whose every
derived id fits (`MAX_CLIENT_LENGTH`) is computed here from the formats themselves, and the
body schema refuses a longer client before anything is called.
"""

from __future__ import annotations

import hashlib

from clients.betflex_ids import payout_id, stake_id  # the formats, shared with the `wallet` CLI

__all__ = ["MAX_CLIENT_LENGTH", "MAX_ID_LENGTH", "MAX_UID", "payout_id", "pool_reference", "resettle_id",
           "stake_id"]

# betflex's uids (bets, users, pools) are JSON numbers: non-negative and within a signed 64-bit integer.
MAX_UID = 2**63 - 1
# The core's limit on any identifier, transaction ids included (wallet_core.domain.MAX_ID_LENGTH;
# the edge does not import the core, a unit test keeps the two equal).
MAX_ID_LENGTH = 128


def pool_reference(pool_uid: int | None) -> str:
    return f"pool:{pool_uid}" if pool_uid is not None else ""


# The longest client whose ids still fit with the largest bet uid: 128 - len("betflex::payout:" + 19 digits).
MAX_CLIENT_LENGTH = MAX_ID_LENGTH - max(len(derive("", MAX_UID)) for derive in (stake_id, payout_id))


def resettle_id(client: str, bet_uid: int, payout: str) -> str:
    """The id of an automatic resettle of a bet to `payout` (WALLET_EDGE_AUTO_RESETTLE): one per new payout,
    so a redelivery of the corrected callback replays it. A digest keeps it within MAX_ID_LENGTH."""
    digest = hashlib.sha256(f"{client}\n{bet_uid}\n{payout}".encode()).hexdigest()[:40]
    return f"betflex:resettle:{digest}"
