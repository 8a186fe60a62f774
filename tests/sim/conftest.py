"""The simulation's figures, printed at the end of every run that ran it (CI's log keeps them)."""

from __future__ import annotations

import pytest

FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("deterministic simulation (tests/sim)")
        for name, line in FIGURES.items():
            terminalreporter.write_line(f"{name}: {line}")
