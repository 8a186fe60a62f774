"""Build hook: generate the Python gRPC code from protos/ at install time.

The generated modules are never committed. Every install (`pip install .`, `pip install -e .`,
building a wheel) runs `build_py`, which runs grpc_tools.protoc over protos/ into
clients/wallet/v1/ and fixes the one absolute import protoc writes, so that the generated
package lives inside `clients` instead of claiming a top-level `wallet` package. The .proto
itself is copied there too and shipped in the wheel (clients/wallet/v1/wallet.proto).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "clients"


def generate_protos() -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO_ROOT}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT_ROOT}",
        f"--pyi_out={OUT_ROOT}",
        f"--grpc_python_out={OUT_ROOT}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    for proto in protos:
        package_dir = OUT_ROOT / proto.relative_to(PROTO_ROOT).parent
        # make every generated directory a regular package
        d = package_dir
        while d != OUT_ROOT:
            (d / "__init__.py").touch()
            d = d.parent
        for generated in package_dir.glob("*_pb2*.py*"):
            text = generated.read_text()
            # protoc writes `from wallet.v1 import x_pb2`; we ship it as clients.wallet.v1
            fixed = re.sub(r"^from (wallet(\.\w+)*) import", r"from clients.\1 import", text, flags=re.M)
            if fixed != text:
                generated.write_text(fixed)
        # ship the .proto beside the code generated from it, at its import path, so that other
        # languages can generate from an installed package: protoc -I <site-packages>/clients ...
        shutil.copyfile(proto, package_dir / proto.name)


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        generate_protos()
        # the package list was computed before the generated packages existed
        for pkg in ("clients.wallet", "clients.wallet.v1"):
            if self.packages is not None and pkg not in self.packages:
                self.packages.append(pkg)
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
