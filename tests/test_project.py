"""The README's promises about the project itself: the two quick-start commands and CI."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def _loaded_by_importing(package: str) -> set[str]:
    """The top-level packages in sys.modules after importing every module of `package`, in a fresh interpreter."""
    script = (
        "import importlib, pkgutil, sys\n"
        f"import {package} as root\n"
        "for info in pkgutil.walk_packages(root.__path__, root.__name__ + '.'):\n"
        "    if '.migrations' not in info.name:  # Alembic's env.py and versions run only inside Alembic\n"
        "        importlib.import_module(info.name)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def _imported_anywhere(package: str) -> dict[str, set[str]]:
    """module file -> the top-level packages its import statements name, deferred ones (inside functions) too."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


# DESIGN §7: the dependencies point one way. wallet_cli (the `wallet` command and its wiring) may import
# everything; wallet_core never the edge, the bench or the CLI; the edge reaches money only over gRPC
# (clients) and can be deployed without the core's code; clients import none of the services.
FORBIDDEN = {
    "wallet_core": {"edge_http", "wallet_bench", "wallet_cli"},
    "edge_http": {"wallet_core", "wallet_bench", "wallet_cli"},
    "clients": {"wallet_core", "edge_http", "wallet_bench", "wallet_cli"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_statement_crosses_the_layout(package: str) -> None:
    crossing = {module: names & FORBIDDEN[package] for module, names in _imported_anywhere(package).items()}
    assert {module: names for module, names in crossing.items() if names} == {}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_nothing_across_the_layout(package: str) -> None:
    assert not _loaded_by_importing(package) & FORBIDDEN[package]


def test_wallet_version_names_the_installed_distribution() -> None:
    done = subprocess.run([sys.executable, "-m", "wallet_cli", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wallet, version ")
