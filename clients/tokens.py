"""Bearer tokens, each allowed a set of clients (tenants) and nothing else: the one token format.

The core (`WALLET_GRPC_TOKENS`) and the betflex edge (`WALLET_EDGE_TOKENS`) read the same
specification, `token=client1,client2;token2=*` (`*`: every client). A token may be configured
by its digest, `sha256:<64 hex digits>`, so that the secret itself need not sit in the
configuration. Presented tokens are hashed and compared with every configured digest in
constant time; no comparison stops early, and a token never reaches an error message or a log.

An entry may start with a label, `label:token=clients` (a letter, then up to 63 letters, digits,
`_`, `.` or `-`): the name the core's audit trail records for that token's operator actions. An
unlabelled token is "token N", N its position in the specification.

It lives in `clients` because both the core and the edge import it and neither may import the
other; it imports nothing of the project.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ALL_CLIENTS = "*"
HASH_PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_LABEL = re.compile(r"([A-Za-z][A-Za-z0-9_.-]{0,63}):(.+)", re.DOTALL)
FORMAT = "TOKEN=client1,client2 or TOKEN=* (entries separated by ';')"


@dataclass(frozen=True)
class Grant:
    """One configured token (kept only as its SHA-256 digest) and the clients it may act for."""

    digest: bytes
    clients: frozenset[str]  # {"*"} for every client
    label: str = ""  # who acts with this token, for the audit trail ("token N" when not configured)

    def allows(self, client: str) -> bool:
        return ALL_CLIENTS in self.clients or client in self.clients

    def describe(self) -> str:
        """The clients, for a start-up line: `*` (every client) or `casino, fanteam`. Never the token."""
        return "* (every client)" if ALL_CLIENTS in self.clients else ", ".join(sorted(self.clients))


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_token_spec(spec: str) -> list[Grant]:
    """`token=c1,c2;token2=*` → grants. Errors name the entry's position, never its token.

    The clients follow the last `=` of an entry, so a token may itself contain `=` (base64
    padding). An entry without clients (the old comma-separated list of bare tokens) is refused.
    """
    grants: list[Grant] = []
    for n, entry in enumerate(filter(None, (e.strip() for e in spec.split(";"))), start=1):
        token, sep, clients_text = entry.rpartition("=")
        token = token.strip()
        label = f"token {n}"
        named = _LABEL.fullmatch(token)
        if named is not None and named.group(1).lower() != HASH_PREFIX[:-1]:
            label, token = named.group(1), named.group(2).strip()
        clients = frozenset(c.strip() for c in clients_text.split(",") if c.strip())
        if not sep or not token or not clients:
            raise ValueError(f"token entry {n}: expected {FORMAT}; a token without its clients is refused")
        if token.lower().startswith(HASH_PREFIX):
            hexdigest = token[len(HASH_PREFIX):]
            if not _SHA256_HEX.fullmatch(hexdigest):
                raise ValueError(f"token entry {n} starts with 'sha256:' but is not followed by 64 hex digits")
            grants.append(Grant(bytes.fromhex(hexdigest), clients, label))
        else:
            grants.append(Grant(digest(token), clients, label))
    return grants


def spec(token: str, clients: Iterable[str]) -> str:
    """One entry of a token specification: `token=c1,c2` (`*` alone when it is among the clients)."""
    names = sorted(set(clients))
    return f"{token}={ALL_CLIENTS if ALL_CLIENTS in names else ','.join(names)}"


def clients_of(grants: Iterable[Grant]) -> frozenset[str]:
    """Every client some grant may act for: `{"*"}` as soon as one grant may act for every client."""
    union: set[str] = set()
    for grant in grants:
        union |= grant.clients
    return frozenset({ALL_CLIENTS}) if ALL_CLIENTS in union else frozenset(union)


def find_grant(token: str, grants: Sequence[Grant]) -> Grant | None:
    """The grant of a presented token, or None. Every digest is compared, whichever matches."""
    presented = digest(token)
    found: Grant | None = None
    for grant in grants:
        if hmac.compare_digest(presented, grant.digest) and found is None:
            found = grant
    return found
