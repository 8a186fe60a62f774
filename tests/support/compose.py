"""docker-compose.yml's wallet services, run as local processes (Docker is not available here).

`environment(service, substitutions)` is the service's environment as compose would give it:
`${VAR}`, `${VAR:?message}` and `${VAR:-default}` are taken from `substitutions` (the caller's
shell), and any other text in `substitutions` (a host name, a URL) is replaced as well.
`run_service` starts the service's own command with that environment, its `0.0.0.0:` address
pointed at this machine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.stack import ROOT, spawn

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WALLET_SERVICES = [name for name, service in SERVICES.items() if "build" in service]
_VARIABLE = re.compile(r"\$\{(\w+)(?::\?[^}]*|:-([^}]*))?\}")


def command(service: str) -> list[str]:
    return list(SERVICES[service]["command"])


def environment(service: str, substitutions: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in SERVICES[service].get("environment", {}).items():
        def variable(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if default is not None:
                return substitutions.get(name) or default
            return substitutions[name]

        text = _VARIABLE.sub(variable, str(value))
        for old, new in substitutions.items():
            text = text.replace(old, new)
        env[key] = text
    return env


def run_service(service: str, env: dict[str, str], address: str | None, log: Path) -> subprocess.Popen[bytes]:
    words = [address if word.startswith("0.0.0.0:") and address else word for word in command(service)]
    return spawn(words, env, log)
