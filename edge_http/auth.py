"""Who may call the callbacks: bearer tokens and an optional network allowlist.

Tokens are kept only as SHA-256 digests and compared in constant time against every
configured digest (no early exit), so neither the comparison time nor the list order says
anything about a token. Nothing here ever logs or returns a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
HASH_PREFIX = "sha256:"


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def parse_tokens(text: str) -> list[bytes]:
    """`WALLET_EDGE_TOKENS` → SHA-256 digests. `sha256:<64 hex>` configures a token by its digest."""
    digests = []
    for index, entry in enumerate(_entries(text)):
        if entry.lower().startswith(HASH_PREFIX):
            hexdigest = entry[len(HASH_PREFIX):]
            if not _SHA256_HEX.fullmatch(hexdigest):
                raise ValueError(f"token entry #{index + 1} starts with 'sha256:' but is not 64 hex digits")
            digests.append(bytes.fromhex(hexdigest))
        else:
            digests.append(hashlib.sha256(entry.encode()).digest())
    return digests


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
    """Checks an `Authorization` header against the configured tokens."""

    def __init__(self, digests: Sequence[bytes]) -> None:
        self._digests = tuple(digests)

    @classmethod
    def from_setting(cls, text: str) -> TokenVerifier:
        return cls(parse_tokens(text))

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> bool:
        """True when the header is `Bearer <token>` with a configured token."""
        token = bearer_token(authorization)
        if token is None:
            return False
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        matched = False
        for digest in self._digests:  # every digest, always: no early exit
            matched |= hmac.compare_digest(presented, digest)
        return matched


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
