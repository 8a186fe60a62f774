"""What betflex does in one simulated run, drawn from a seed: users, slips, deliveries, faults.

betflex here is an integrator that follows the spec and a hostile one at once: slips share bet
uids (the same uid in a slip of its own, in a larger slip, with another amount, user or pool),
some bodies are invalid (an amount the edge refuses, an over-precise amount or an unknown
currency the core refuses, an unknown user), a slip may be delivered twice at once, and a
delivery is repeated after a 503, after an answer lost on the way back, and sometimes after a
definite answer too.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace

from tests.sim.network import Faults, Window

CLIENT = "fanteam"
CURRENCY = "EUR"


@dataclass(frozen=True)
class Bet:
    uid: int
    user: str
    amount: str
    pool: int
    currency: str = CURRENCY


@dataclass(frozen=True)
class Slip:
    key: int
    bets: tuple[Bet, ...]
    first: float  # when betflex first delivers it
    concurrent: bool  # a second delivery starts while the first is running
    replay_after: float | None  # delivered once more this long after a definite answer

    def body(self) -> bytes:
        return json.dumps({"bets": [
            {
                "user": {"client": CLIENT, "uid": int(b.user), "ip": "203.0.113.7"},
                "pool": {"client": CLIENT, "currency": b.currency, "game": "betflex", "uid": b.pool,
                         "overdraw": "9.99"},
                "bet": {"uid": b.uid, "amount": b.amount},
            }
            for b in self.bets
        ]}).encode()


@dataclass(frozen=True)
class Edge:
    bets_deadline: float
    attempt_timeout: float
    fence_deadline: float


@dataclass
class Scenario:
    seed: int
    deposits: dict[str, str]  # user id -> EUR deposited before the run
    slips: list[Slip]
    faults: Faults
    edge: Edge
    answer_loss: float  # probability that betflex never receives an answer the edge sent
    max_deliveries: int = 6
    notes: list[str] = field(default_factory=list)

    def without_slip(self, key: int) -> Scenario:
        return replace(self, slips=[s for s in self.slips if s.key != key], faults=replace(self.faults, counts={}))

    @property
    def end_of_faults(self) -> float:
        return max([w.end for w in self.faults.down + self.faults.stalls] + [0.0])


def generate(seed: int) -> Scenario:
    rng = random.Random(seed)
    users = [str(1001 + n) for n in range(rng.randint(1, 3))]
    deposits = {u: rng.choice(["0.00", "5.00", "20.00", "50.00", "1000.00"]) for u in users}
    base = rng.randint(1, 10**9)
    uids = [base + n for n in range(rng.randint(2, 10))]
    canonical = {
        uid: Bet(uid, rng.choice(users), rng.choice(["1.00", "2.50", "5.00", "10.00", "25.00"]), rng.randint(1, 4))
        for uid in uids
    }
    slips = []
    for key in range(rng.randint(1, 8)):
        chosen = rng.sample(uids, min(len(uids), rng.choice([1, 1, 1, 2, 2, 3])))
        bets = []
        for uid in chosen:
            bet = canonical[uid]
            roll = rng.random()
            if roll < 0.08:  # the same uid with other content
                bet = replace(bet, amount=rng.choice(["3.00", "7.00"]))
            elif roll < 0.12:
                bet = replace(bet, user=rng.choice([*users, "4242"]))  # 4242 has no wallet
            elif roll < 0.14:
                bet = replace(bet, amount=rng.choice(["-1.00", "1.001", "1e3"]))  # refused by the edge or the core
            elif roll < 0.15:
                bet = replace(bet, currency="XXX")  # not a currency of the core
            bets.append(bet)
        slips.append(Slip(
            key, tuple(bets), first=rng.uniform(0, 10), concurrent=rng.random() < 0.2,
            replay_after=rng.uniform(0.5, 20) if rng.random() < 0.25 else None,
        ))
    horizon = 30.0

    def windows(most: int, longest: float) -> list[Window]:
        result = []
        for _ in range(rng.randint(0, most)):
            start = rng.uniform(0, horizon)
            result.append(Window(start, start + rng.uniform(0.2, longest)))
        return result

    faults = Faults(seed=seed, rate=rng.choice([0.0, 0.05, 0.15, 0.3, 0.5]), down=windows(2, 8.0),
                    stalls=windows(2, 8.0))
    edge = Edge(bets_deadline=rng.choice([1.0, 3.0]), attempt_timeout=rng.choice([0.3, 1.0]),
                fence_deadline=rng.choice([1.0, 3.0]))
    return Scenario(seed, deposits, slips, faults, edge, answer_loss=rng.choice([0.0, 0.1, 0.3]))
