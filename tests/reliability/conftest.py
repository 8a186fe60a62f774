"""Fixtures of the reliability campaign: a PostgreSQL database of its own, the campaign's figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.support.db import PostgresDatabase, empty_postgres
from wallet_core.storage.engine import make_engine

FIGURES: dict[str, Counter[str]] = {}


@pytest.fixture
def pg_url(postgres_database: PostgresDatabase) -> Iterator[str]:
    """The session's PostgreSQL test database, emptied (for the tests that are about PostgreSQL only)."""
    engine = make_engine(postgres_database.url, pool_size=1)
    empty_postgres(engine)
    engine.dispose()
    yield postgres_database.url


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Counter[str]:
    """Counts for this test (operations run, faults injected, inputs tried, violations found); printed
    at the end of the session in long mode, and in any mode with -s."""
    counter: Counter[str] = Counter()
    FIGURES[request.node.nodeid.split("::", 1)[-1]] = counter
    return counter


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES or not terminalreporter.config.getoption("--long"):
        return
    terminalreporter.section("reliability campaign figures (long mode)")
    total: Counter[str] = Counter()
    for name, counter in FIGURES.items():
        total.update(counter)
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counter.items())))
    terminalreporter.write_line("TOTAL: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
