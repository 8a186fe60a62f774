"""One decision per bet (DESIGN §5), proven by a deterministic simulation (issue 10).

Each seed is a run of betflex (deliveries, redeliveries after lost answers, concurrent deliveries
of one slip, slips that share bet uids, invalid bodies) against the real edge logic
(`edge_http.placement.BetPlacer`), the real gRPC service adapter and the real ledger rules, over
a simulated network and database whose faults the seed decides. An oracle remembers every answer
and checks it against the ledger at once and after everything landed (tests/sim/oracle.py).

Short mode (CI): 2,000 seeds on the in-memory store, 40 on real SQLite files. `--long`: at least
1,000,000 simulated deliveries. A failure prints the seed, the shrunk scenario and its trace;
`python -m tests.sim.runner --seed N` replays it exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sim.conftest import FIGURES
from tests.sim.runner import campaign, report_failure, run, sqlite_ledger
from tests.sim.workload import generate
from tests.support.db import SqliteTemplate

SHORT_SEEDS = 2000
LONG_DELIVERIES = 1_000_000


def explain(failing: list[int], **kwargs: object) -> str:
    return "\n\n".join(report_failure(generate(seed), **kwargs) for seed in failing[:2])  # type: ignore[arg-type]


@pytest.mark.timeout(3600)  # short mode takes well under a minute; --long, about 20 minutes of CPU
def test_every_seed_keeps_one_decision_per_bet(long_mode: bool) -> None:
    if long_mode:
        figures = campaign(range(SHORT_SEEDS), min_deliveries=LONG_DELIVERIES, workers=2)
    else:
        figures = campaign(range(SHORT_SEEDS))
    FIGURES["in-memory ledger" + (" (long)" if long_mode else "")] = figures.render()
    assert figures.seeds >= SHORT_SEEDS and (not long_mode or figures.deliveries >= LONG_DELIVERIES)
    assert figures.answers[200] and figures.answers[402] and figures.answers[409] and figures.answers[503]
    assert not figures.failing, explain(figures.failing)


def test_the_same_seeds_hold_on_a_real_sqlite_ledger(sqlite_template: SqliteTemplate, tmp_path: Path) -> None:
    figures = campaign(range(40), sqlite_ledger(sqlite_template.path, tmp_path))
    FIGURES["SQLite ledger"] = figures.render()
    assert not figures.failing, explain(figures.failing, make_ledger=sqlite_ledger(sqlite_template.path, tmp_path))


def test_a_seed_replays_exactly() -> None:
    first, again = run(generate(24)), run(generate(24))
    assert first.trace == again.trace and first.answers == again.answers and len(first.trace) > 10


# The four defects of the /bets rule before issue 10 (tests/sim/legacy.py), as the oracle names them.
OLD_DEFECTS = {
    "402 after a charge": ("402 after 200", "402 but taken"),
    "200 after a 402": ("200 after 402", "402 not final"),
    "a timeout reverses a confirmed bet": ("200 reversed",),
    "402 for a charged bet": ("402 conflict on a taken bet",),
}


def test_the_simulation_catches_every_defect_of_the_old_rule() -> None:
    figures = campaign(range(300), legacy=True)
    lines = []
    for defect, categories in OLD_DEFECTS.items():
        seeds = sorted({s for c in categories for s in figures.by_category.get(c, [])})
        lines.append(f"{defect}: {len(seeds)} seeds, e.g. {seeds[:6]}")
        assert seeds, f"the simulation no longer finds '{defect}' in the old rule"
    FIGURES["the pre-issue-10 rule"] = f"{len(figures.failing)} of {figures.seeds} seeds fail; " + "; ".join(lines)


@pytest.mark.parametrize("seed", [3, 13, 24, 33])
def test_seeds_that_broke_the_old_rule_hold_now(seed: int) -> None:
    """Regression: each of these seeds fails with the old rule (see the test above) and passes now."""
    assert not run(generate(seed), legacy=True).ok
    result = run(generate(seed))
    assert result.ok, report_failure(generate(seed))
