"""The oracle: every answer the edge gave, checked against the ledger now and after everything landed.

DESIGN §5, one decision per bet:
- never a 200 and a 402 for one bet uid, in either order, across every delivery of every slip;
- 200: every bet of the slip is taken, with exactly this content, and not reversed (but by an operator's
  explicit Cancel, which the simulation also does now and then);
- 402: no bet of the slip is taken, and none ever will be (each is refused or fenced in the ledger);
- 409: some bet of the slip is taken, and no other bet of it can still be taken;
- 503: nothing is promised;
and the ledger's own invariants (`wallet reconcile`), and every wallet holds exactly its deposit
less the stakes taken from it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from edge_http.betflex import pool_reference, stake_id
from tests.sim.ledgers import Fact
from tests.sim.workload import CLIENT, Bet, Scenario, Slip
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import AccountKey, StakeState
from wallet_core.errors import WalletError

EUR = CurrencyRegistry().get("EUR")


@dataclass(frozen=True)
class Answer:
    at: float
    slip: int
    delivery: int
    status: int
    code: str
    received: bool

    def __str__(self) -> str:
        told = "" if self.received else " (lost on the way to betflex)"
        return f"t={self.at:.3f} slip {self.slip} delivery {self.delivery}: {self.status} {self.code}{told}"


def minor(amount: str) -> int | None:
    try:
        return EUR.parse(amount)
    except WalletError:
        return None


class Oracle:
    def __init__(self, scenario: Scenario, ledger: object) -> None:
        self.scenario = scenario
        self.ledger = ledger
        self.slips = {s.key: s for s in scenario.slips}
        self.answers: list[Answer] = []
        self.violations: list[str] = []
        self._statuses: dict[int, set[int]] = defaultdict(set)  # bet uid -> statuses answered for slips naming it
        self.reversed_by_operator: set[int] = set()  # bet uids an operator reversed: an explicit act, not a fault
        self.every_step = hasattr(ledger, "rows")  # the in-memory ledger is cheap enough to check after every answer

    def fact(self, bet: Bet) -> Fact | None:
        fact: Fact | None = self.ledger.fact(CLIENT, stake_id(CLIENT, bet.uid))  # type: ignore[attr-defined]
        return fact

    def record(self, answer: Answer) -> None:
        self.answers.append(answer)
        slip = self.slips[answer.slip]
        for bet in slip.bets:
            seen = self._statuses[bet.uid]
            if answer.status == 402 and 200 in seen:
                self.violations.append(f"[402 after 200] bet {bet.uid} was answered 200, then 402: {answer}")
            if answer.status == 200 and 402 in seen:
                self.violations.append(f"[200 after 402] bet {bet.uid} was answered 402, then 200: {answer}")
            seen.add(answer.status)
        self.violations.extend(self.check(answer))
        if self.every_step:  # every promise made so far must still hold now, and so must the ledger's invariants
            for earlier in self.answers[:-1]:
                self.violations.extend(f"{v} (still, at t={answer.at:.3f})" for v in self.check(earlier)
                                       if f"{v} (still, at t={answer.at:.3f})" not in self.violations)
            self.violations.extend(f"[invariant] {v} (at t={answer.at:.3f})" for v in self.ledger.violations())  # type: ignore[attr-defined]

    def check(self, answer: Answer) -> list[str]:
        slip = self.slips[answer.slip]
        facts = [(bet, self.fact(bet)) for bet in slip.bets]
        found = []
        if answer.status == 200:
            for bet, fact in facts:
                if fact is None or not fact.taken:
                    found.append(f"[200 not taken] {answer}: bet {bet.uid} is not taken ({fact})")
                elif fact.stake_state == StakeState.CANCELLED and bet.uid not in self.reversed_by_operator:
                    found.append(f"[200 reversed] {answer}: bet {bet.uid} was taken and then reversed")
                elif (fact.user_id, fact.currency, fact.amount, fact.reference) != (
                        bet.user, bet.currency, minor(bet.amount), pool_reference(bet.pool)):
                    found.append(f"[200 other content] {answer}: bet {bet.uid} is taken with other content ({fact})")
        elif answer.status == 402:
            for bet, fact in facts:
                if fact is not None and fact.taken:
                    kind = "402 conflict on a taken bet" if answer.code == "duplicate_bet_conflict" else "402 but taken"
                    found.append(f"[{kind}] {answer}: bet {bet.uid} is taken ({fact})")
                elif fact is None or not fact.void:
                    found.append(f"[402 not final] {answer}: bet {bet.uid} is neither refused nor fenced: "
                                 "a later delivery may take it")
        elif answer.status == 409:
            if not any(fact is not None and fact.taken for _, fact in facts):
                found.append(f"[409 nothing taken] {answer}: no bet of the slip is taken")
            for bet, fact in facts:
                if fact is None or not (fact.taken or fact.void):
                    found.append(f"[409 open bet] {answer}: bet {bet.uid} of the slip may still be taken ({fact})")
        elif answer.status != 503:
            found.append(f"[bad status] {answer}: a status /bets never answers")
        return found

    def final(self) -> list[str]:
        """After every call in flight landed: every answer again, the invariants, every wallet's balance."""
        found = [f"{v} (after quiescence)" for a in self.answers for v in self.check(a)]
        found += [f"[invariant] {v}" for v in self.ledger.violations()]  # type: ignore[attr-defined]
        taken: dict[str, int] = defaultdict(int)
        for uid in sorted({b.uid for s in self.scenario.slips for b in s.bets}):
            fact = self.ledger.fact(CLIENT, stake_id(CLIENT, uid))  # type: ignore[attr-defined]
            if fact is not None and fact.taken and fact.stake_state != StakeState.CANCELLED:
                taken[fact.user_id] += fact.amount
        for user, deposit in sorted(self.scenario.deposits.items()):
            expected = EUR.parse(deposit) - taken[user]
            held = self.ledger.balance(AccountKey(CLIENT, user, "EUR"))  # type: ignore[attr-defined]
            if held != expected:
                found.append(f"[balance] wallet {user} holds {held}, its deposit less the stakes taken is {expected}")
        return found

    @staticmethod
    def category(violation: str) -> str:
        return violation[1:violation.index("]")] if violation.startswith("[") else "other"

    def unresolved(self, slip: Slip) -> bool:
        """True while betflex has no definite answer for the slip (none received, or the last was a 503)."""
        received = [a for a in self.answers if a.slip == slip.key and a.received]
        return not received or received[-1].status == 503
