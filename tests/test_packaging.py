"""What the package promises about itself: true lower bounds, a name of its own, the .proto inside.

The lower bounds are exercised for real by .ci/run, which installs constraints-lowest.txt and runs
the unit and API tests with it; the checks here keep that file, pyproject.toml and the generated
code in step, and look inside a freshly built wheel.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import clients

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GENERATED = Path(clients.__file__).resolve().parent / "wallet" / "v1"


def lower_bounds() -> dict[str, Version]:
    bounds: dict[str, Version] = {}
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==")]
        assert len(lows) == 1, f"{line}: every direct dependency needs exactly one lower bound"
        bounds[canonicalize_name(req.name)] = lows[0]
    return bounds


def lowest_constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_lowest_versions_ci_installs_are_exactly_the_lower_bounds() -> None:
    assert lowest_constraints() == lower_bounds()


def test_ci_runs_the_unit_and_api_tests_on_the_lowest_versions() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "-c constraints-lowest.txt" in script
    assert "tests/unit tests/integration/test_api.py" in script


def test_the_grpc_lower_bound_is_the_pinned_grpcio_tools_that_generates_the_code() -> None:
    # the generated code raises at import under a grpcio older than the grpcio-tools that wrote it
    tools = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("grpcio-tools")]
    assert len(tools) == 1 and len(tools[0].specifier) == 1
    (pin,) = tools[0].specifier
    assert pin.operator == "==", "grpcio-tools must be pinned, or a newer one raises grpcio's true minimum"
    generated = re.search(r"GRPC_GENERATED_VERSION = '(.+?)'", (GENERATED / "wallet_pb2_grpc.py").read_text())
    assert generated is not None
    assert Version(generated[1]) == Version(pin.version) == lower_bounds()["grpcio"]


def test_the_protobuf_lower_bound_runs_the_generated_code() -> None:
    # protobuf refuses gencode newer than its runtime, and a gencode of another major version
    gencode = re.search(r"Protobuf Python Version: (\S+)", (GENERATED / "wallet_pb2.py").read_text())
    assert gencode is not None
    low = lower_bounds()["protobuf"]
    assert Version(gencode[1]) <= low and Version(gencode[1]).major == low.major


def test_the_distribution_name_is_our_own_and_the_command_is_wallet() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == "betflex-wallet-ledger"  # "wallet" on PyPI is somebody else's
    assert project["scripts"] == {"wallet": "wallet_cli.cli:main"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, timeout=240)
    (built,) = out.glob("betflex_wallet_ledger-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_the_proto_beside_the_generated_code(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    proto = "clients/wallet/v1/wallet.proto"
    assert proto in names
    assert wheel.read(proto) == (ROOT / "protos" / "wallet" / "v1" / "wallet.proto").read_bytes()
    assert {"clients/wallet/v1/wallet_pb2.py", "clients/wallet/v1/wallet_pb2_grpc.py"} <= names


def test_the_wheel_installs_only_our_own_top_level_names(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/", 1)[0] for name in wheel.namelist() if not name.split("/", 1)[0].endswith(".dist-info")}
    # DESIGN §7's layout; the benchmark lives in wallet_bench, not in PyPI's "bench"
    assert top == {"wallet_core", "wallet_cli", "edge_http", "clients", "wallet_bench"}
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    assert "Name: betflex-wallet-ledger" in wheel.read(metadata).decode().splitlines()
