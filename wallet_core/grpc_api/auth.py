"""Bearer tokens, each allowed a set of clients (tenants) and nothing else.

`WALLET_GRPC_TOKENS` reads `token=client1,client2;token2=*` (`*`: every client). A token may
be configured by its hash, `sha256:<64 hex digits>`, so that the secret itself need not sit
in the configuration. Presented tokens are hashed and compared with every configured digest
in constant time; no comparison stops early, and a token never reaches a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from wallet_core import errors

ALL_CLIENTS = "*"
_HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class Grant:
    digest: bytes
    clients: frozenset[str]  # {"*"} for every client

    def allows(self, client: str) -> bool:
        return ALL_CLIENTS in self.clients or client in self.clients


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_spec(spec: str) -> list[Grant]:
    """`token=c1,c2;token2=*` → grants. Errors name the entry's position, never its token."""
    grants: list[Grant] = []
    for n, entry in enumerate(filter(None, (e.strip() for e in spec.split(";"))), start=1):
        token, sep, clients_text = entry.partition("=")
        token = token.strip()
        clients = frozenset(c.strip() for c in clients_text.split(",") if c.strip())
        if not sep or not token or not clients:
            raise ValueError(f"token entry {n}: expected TOKEN=client1,client2 or TOKEN=*")
        hashed = _HASHED.fullmatch(token)
        grants.append(Grant(bytes.fromhex(hashed.group(1)) if hashed else digest(token), clients))
    return grants


class Authenticator:
    """Who may touch which client. With `insecure_no_auth`, anybody may touch anything."""

    def __init__(self, grants: Iterable[Grant], *, insecure_no_auth: bool = False) -> None:
        self._grants = list(grants)
        self.insecure_no_auth = insecure_no_auth

    def grant_for(self, authorization: str | None) -> Grant | None:
        """The grant of the bearer token in an `authorization` value; raises Unauthenticated."""
        if self.insecure_no_auth:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("a bearer token is required (metadata 'authorization: Bearer <token>')")
        presented = digest(token.strip())
        found: Grant | None = None
        for grant in self._grants:  # every grant is compared, whichever matches
            if hmac.compare_digest(presented, grant.digest) and found is None:
                found = grant
        if found is None:
            raise errors.Unauthenticated("the bearer token is not valid")
        return found

    def check(self, grant: Grant | None, client: str) -> None:
        """Raises PermissionDenied unless the grant may touch `client` (an empty client is left to validation)."""
        if grant is None or not client:
            return
        if not grant.allows(client):
            raise errors.PermissionDenied(f"this token may not act for client {client!r}")
