"""Who may call the callbacks, and for which clients: bearer tokens and an optional network allowlist.

`WALLET_EDGE_TOKENS` has the core's token format (`clients.tokens`): `token=client1,client2`
entries separated by `;`, each token allowed those clients (`*`: every client). Tokens are kept
only as SHA-256 digests and compared in constant time against every configured digest (no early
exit), so neither the comparison time nor the list order says anything about a token. Nothing
here ever logs or returns a token.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from clients.tokens import Grant, clients_of, find_grant, parse_token_spec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def parse_tokens(text: str) -> list[Grant]:
    """`WALLET_EDGE_TOKENS` → grants (digest and clients); a bare token without clients is refused."""
    try:
        return parse_token_spec(text)
    except ValueError as exc:
        raise ValueError(
            f"{exc} (WALLET_EDGE_TOKENS names the clients of each token since the edge checks tenants: "
            "'token=fanteam' instead of 'token')"
        ) from None


def parse_networks(text: str) -> list[IPNetwork]:
    """Comma-separated CIDRs (a bare address is a /32 or /128). Host bits must be zero."""
    networks = []
    for entry in _entries(text):
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a network: {exc}") from None
    return networks


def parse_address(text: str) -> IPAddress | None:
    """An address as found in a socket peer or an X-Forwarded-For entry; None if it is not one.

    Accepts `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]`, `[::1]:443`; IPv4-mapped IPv6
    addresses are read as the IPv4 address they carry.
    """
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inside(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


class TokenVerifier:
    """Checks an `Authorization` header against the configured tokens; says which clients it may act for."""

    def __init__(self, grants: Sequence[Grant]) -> None:
        self._grants = tuple(grants)

    @classmethod
    def from_setting(cls, text: str) -> TokenVerifier:
        return cls(parse_tokens(text))

    def __bool__(self) -> bool:
        return bool(self._grants)

    @property
    def grants(self) -> tuple[Grant, ...]:
        return self._grants

    def clients(self) -> frozenset[str]:
        """Every client some token may act for (`{"*"}` if one may act for all): what the core token needs."""
        return clients_of(self._grants)

    def grant(self, authorization: str | None) -> Grant | None:
        """The grant of the header's `Bearer <token>`, or None when it is not a configured token."""
        token = bearer_token(authorization)
        if token is None:
            return None
        return find_grant(token, self._grants)

    def check(self, authorization: str | None) -> bool:
        """True when the header is `Bearer <token>` with a configured token."""
        return self.grant(authorization) is not None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class AddressPolicy:
    """The optional allowlist: which client addresses may call the callbacks.

    The client address is the socket peer, unless the peer is a trusted proxy: then it is
    the right-most X-Forwarded-For entry that is not itself a trusted proxy (entries to the
    left of it were written by the client and prove nothing). An unreadable entry refuses.
    """

    def __init__(self, allow: Sequence[IPNetwork], trusted_proxies: Sequence[IPNetwork]) -> None:
        self.allow = tuple(allow)
        self.trusted_proxies = tuple(trusted_proxies)

    @classmethod
    def from_settings(cls, allow: str, trusted_proxies: str) -> AddressPolicy:
        return cls(parse_networks(allow), parse_networks(trusted_proxies))

    @property
    def enabled(self) -> bool:
        return bool(self.allow)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> IPAddress | None:
        address = parse_address(peer) if peer else None
        if address is None or not _inside(address, self.trusted_proxies):
            return address
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            hop_address = parse_address(hop)
            if hop_address is None:
                return None
            address = hop_address
            if not _inside(address, self.trusted_proxies):
                return address
        return address

    def permits(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> bool:
        if not self.allow:
            return True
        address = self.client_address(peer, forwarded_for)
        return address is not None and _inside(address, self.allow)
