"""A plain in-memory model of the ledger's rules, written independently of wallet_core.

The model-checking tests run the same calls against the real core and against this model and
demand the same answers. It is deliberately naive: dicts, integers, no batching, no SQL.
Results are compared as ("ok", balance after) or ("error", REASON).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

Result = tuple[str, object]


@dataclass
class ModelStake:
    user: str
    amount: int
    state: str = "open"  # open, settled, cancelled
    payout: int = 0  # the payout that settles it now


@dataclass
class Model:
    users: tuple[str, ...]
    balances: dict[str, int] = field(default_factory=dict)
    # transaction id -> (content, result); content is what a replay must repeat exactly
    decided: dict[str, tuple[tuple[object, ...], Result]] = field(default_factory=dict)
    stakes: dict[str, ModelStake] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)
    settled_by: dict[str, str] = field(default_factory=dict)  # payout id -> stake id
    debts: dict[str, int] = field(default_factory=dict)  # what a player owes after a clawback

    def __post_init__(self) -> None:
        for u in self.users:
            self.balances.setdefault(u, 0)

    def copy(self) -> Model:
        return copy.deepcopy(self)

    # ---- calls

    def deposit(self, tid: str, user: str, amount: int) -> Result:
        content = ("deposit", user, amount)
        if amount <= 0:  # bad input is refused before the id is looked at, as for a debit
            return ("error", "INVALID_AMOUNT")
        if tid in self.decided or tid in self.tombstones:
            return self._replay(tid, content)
        self._credit(user, amount)
        return self._decide(tid, content, ("ok", self.balances[user]))

    def debit(self, items: list[tuple[str, str, int]]) -> Result:
        """items: (tid, user, amount) stakes, all or nothing; the result is the last item's balance."""
        ids = sorted(t for t, _, _ in items)
        if any(a <= 0 for _, _, a in items):
            return ("error", "INVALID_AMOUNT")
        contents = {t: ("stake", u, a, tuple(ids)) for t, u, a in items}
        seen = [t for t, _, _ in items if t in self.decided or t in self.tombstones]
        if seen:
            if len(seen) == len(items) and all(t in self.decided and self.decided[t][0] == contents[t] for t in seen):
                return self.decided[items[-1][0]][1] if self.decided[items[0][0]][1][0] == "ok" \
                    else self.decided[items[0][0]][1]
            if any(t in self.tombstones for t in seen):
                return ("error", "STAKE_CANCELLED")
            return ("error", "IDEMPOTENCY_CONFLICT")
        need: dict[str, int] = {}
        for _, u, a in items:
            need[u] = need.get(u, 0) + a
        if any(self.balances[u] < n for u, n in need.items()):
            refusal = ("error", "INSUFFICIENT_FUNDS")
            for t, _, _ in items:
                self.decided[t] = (contents[t], refusal)
            return refusal
        result: Result = ("ok", None)
        for t, u, a in items:
            self.balances[u] -= a
            self.stakes[t] = ModelStake(u, a)
            result = ("ok", self.balances[u])
            self.decided[t] = (contents[t], result)
        # a replay answers with the last item's balance, as the call did
        for t, _, _ in items:
            self.decided[t] = (contents[t], result)
        return result

    def payout(self, tid: str, user: str, amount: int, stake_id: str) -> Result:
        content = ("payout", user, amount, stake_id)
        if amount < 0:
            return ("error", "INVALID_AMOUNT")
        if tid in self.decided or tid in self.tombstones:
            return self._replay(tid, content)
        if stake_id in self.tombstones:
            return ("error", "STAKE_CANCELLED")
        stake = self.stakes.get(stake_id)
        if stake is None:
            return ("error", "STAKE_NOT_FOUND")
        if stake.state == "settled":
            return ("error", "ALREADY_SETTLED")
        if stake.state == "cancelled":
            return ("error", "STAKE_CANCELLED")
        if stake.user != user:
            return ("error", "STAKE_MISMATCH")
        stake.state = "settled"
        stake.payout = amount
        self._credit(user, amount)
        self.settled_by[tid] = stake_id
        return self._decide(tid, content, ("ok", self.balances[user]))

    def cancel(self, tid: str) -> Result:
        if tid in self.tombstones:
            return ("ok", "tombstoned")
        if tid not in self.decided:
            self.tombstones.add(tid)
            return ("ok", "tombstoned")
        content, result = self.decided[tid]
        if content[0] != "stake":
            return ("error", "NOT_CANCELLABLE")
        if result[0] == "error":
            return ("ok", "not_applied")
        stake = self.stakes[tid]
        if stake.state == "settled":
            return ("error", "ALREADY_SETTLED")
        if stake.state == "open":
            stake.state = "cancelled"
            self._credit(stake.user, stake.amount)
        return ("ok", "reversed")

    def correct(self, tid: str, stake_id: str, new_payout: int | None, policy: str) -> Result:
        """Unsettle (new_payout None) or resettle a settled stake; policy "refuse" or "debt"."""
        content: tuple[object, ...] = (
            ("unsettle", stake_id) if new_payout is None else ("resettle", stake_id, new_payout))
        if tid in self.decided or tid in self.tombstones:
            return self._replay(tid, content)
        if stake_id in self.tombstones:
            return ("error", "STAKE_CANCELLED")
        stake = self.stakes.get(stake_id)
        if stake is None:
            return ("error", "STAKE_NOT_FOUND")
        if stake.state == "open":
            return ("error", "NOT_SETTLED")
        if stake.state == "cancelled":
            return ("error", "STAKE_CANCELLED")
        if new_payout is not None and new_payout == stake.payout:
            return ("error", "INVALID_AMOUNT")
        delta = (new_payout or 0) - stake.payout
        user = stake.user
        if delta >= 0:
            self._credit(user, delta)
        else:
            taken = min(self.balances[user], -delta)
            short = -delta - taken
            if short and policy == "refuse":
                return ("error", "INSUFFICIENT_FUNDS")
            self.balances[user] -= taken
            self.debts[user] = self.debts.get(user, 0) + short
        if new_payout is None:
            stake.state, stake.payout = "open", 0
        else:
            stake.payout = new_payout
        return self._decide(tid, content, ("ok", self.balances[user]))

    # ---- invariants

    def total_debt(self) -> int:
        return sum(self.debts.values())

    def in_play(self) -> int:
        return sum(s.amount for s in self.stakes.values() if s.state == "open")

    # ---- helpers

    def _credit(self, user: str, amount: int) -> None:
        """Money in pays the player's debt off first."""
        repaid = min(self.debts.get(user, 0), amount)
        self.debts[user] = self.debts.get(user, 0) - repaid
        self.balances[user] += amount - repaid

    def _decide(self, tid: str, content: tuple[object, ...], result: Result) -> Result:
        self.decided[tid] = (content, result)
        return result

    def _replay(self, tid: str, content: tuple[object, ...]) -> Result:
        if tid in self.tombstones or self.decided[tid][0] != content:
            return ("error", "IDEMPOTENCY_CONFLICT")
        return self.decided[tid][1]
