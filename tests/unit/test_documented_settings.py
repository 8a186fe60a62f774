"""The documentation and the settings agree: every `WALLET_*` variable the README and docs name is
read by something, and every setting the core and the edge read is documented in a table.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from edge_http.config import EdgeSettings
from wallet_cli.cli import cli
from wallet_core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DOCS = [ROOT / "README.md", ROOT / "docs" / "configuration.md", ROOT / "docs" / "edge.md"]
VARIABLE = re.compile(r"\bWALLET_[A-Z0-9_]*[A-Z0-9]\b")

SETTINGS = {f"WALLET_{name.upper()}" for cls in (Settings, EdgeSettings) for name in cls.model_fields}
TOKEN = {"WALLET_TOKEN"}  # the operator commands' and the Python client's token (clients/_channel.py)
TESTS = {"WALLET_TEST_REQUIRE_POSTGRES", "WALLET_TEST_POSTGRES_URL"}  # tests/support/db.py
# other names a setting is read by (pydantic validation aliases, e.g. an old name kept for operators)
ALIASES = {
    str(choice).upper() for cls in (Settings, EdgeSettings) for field in cls.model_fields.values()
    for choice in getattr(field.validation_alias, "choices", ()) if str(choice).lower().startswith("wallet_")
}
COMPOSE = {"WALLET_EDGE_TOKEN"}  # docker-compose.yml's shell variable for betflex's token (WALLET_EDGE_TOKENS)


def cli_variables() -> set[str]:
    """The variables the `wallet` command's options read."""
    found: set[str] = set()

    def walk(command: click.Command) -> None:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found.update([envvar] if isinstance(envvar, str) else envvar or [])
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(cli)
    return found


def mentioned(path: Path, *, tables_only: bool = False) -> set[str]:
    lines = path.read_text().splitlines()
    return {v for line in lines if not tables_only or line.startswith("|") for v in VARIABLE.findall(line)}


def test_every_documented_variable_is_read_by_something() -> None:
    known = SETTINGS | ALIASES | TOKEN | TESTS | COMPOSE | cli_variables()
    for path in SETTINGS_DOCS:
        unknown = mentioned(path) - known
        assert not unknown, f"{path.name} documents {sorted(unknown)}, which nothing reads"


def test_every_setting_is_documented_in_a_table() -> None:
    documented = mentioned(ROOT / "docs" / "configuration.md", tables_only=True) | mentioned(
        ROOT / "docs" / "edge.md", tables_only=True)
    missing = SETTINGS - documented
    assert not missing, f"settings missing from the tables of docs/configuration.md and docs/edge.md: {sorted(missing)}"


def test_every_variable_of_the_command_line_and_the_token_is_documented() -> None:
    everything = set().union(*(mentioned(path) for path in (ROOT / "docs").glob("*.md")), mentioned(ROOT / "README.md"))
    missing = (cli_variables() | TOKEN) - everything
    assert not missing, f"variables the CLI reads but no document names: {sorted(missing)}"


def test_the_operator_commands_token_variable_is_the_one_the_docs_give() -> None:
    """README and configuration.md name WALLET_TOKEN (not the edge's WALLET_CORE_TOKEN) for the CLI."""
    for path in (ROOT / "README.md", ROOT / "docs" / "configuration.md"):
        rows = [line for line in path.read_text().splitlines() if line.startswith("| `WALLET_")]
        cli_rows = [row for row in rows if "operator" in row or "CLI" in row]
        assert cli_rows and all("WALLET_CORE_TOKEN" not in row.split("|")[1] for row in cli_rows), cli_rows
        assert any(row.startswith("| `WALLET_TOKEN`") for row in rows), path.name
