"""Bearer tokens, each allowed a set of clients (tenants) and nothing else.

`WALLET_GRPC_TOKENS` reads `token=client1,client2;token2=*` (`*`: every client), or
`sha256:<64 hex digits>` for a token configured by its digest: the format of `clients.tokens`,
shared with the betflex edge's `WALLET_EDGE_TOKENS`. A token never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Iterable

from clients.tokens import ALL_CLIENTS, Grant, digest, find_grant, parse_token_spec
from wallet_core import errors

__all__ = ["ALL_CLIENTS", "Authenticator", "Grant", "digest", "parse_token_spec"]


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
        found = find_grant(token.strip(), self._grants)  # every grant is compared, whichever matches
        if found is None:
            raise errors.Unauthenticated("the bearer token is not valid")
        return found

    def check(self, grant: Grant | None, client: str) -> None:
        """Raises PermissionDenied unless the grant may touch `client` (an empty client is left to validation)."""
        if grant is None or not client:
            return
        if not grant.allows(client):
            raise errors.PermissionDenied(f"this token may not act for client {client!r}")
