"""The README's promises about the project itself: the two quick-start commands and CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_quick_start_is_exactly_two_commands() -> None:
    serve, test = quick_start()
    assert serve.endswith("wallet serve") and "pip install" in serve
    assert "pytest" in test and "'.[test]'" in test


def test_ci_runs_the_readme_test_command_with_postgres_required() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert quick_start()[1] in script.splitlines()
    assert "export WALLET_TEST_REQUIRE_POSTGRES=1" in script
    assert "set -euo pipefail" in script  # any failure, including pytest's "no tests" (5), fails CI


def test_generated_code_is_not_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "clients/wallet/" in ignored and "*.db" in ignored and ".venv/" in ignored


def test_ci_lints_and_type_checks_before_the_suite() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ruff = next(n for n, line in enumerate(lines) if line.startswith(".venv/bin/ruff check"))
    mypy = lines.index(".venv/bin/mypy")
    assert ruff < lines.index(quick_start()[1]) and mypy < lines.index(quick_start()[1])
