"""DESIGN section 5: callers authenticate with a bearer token, optionally from allowed networks only."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from edge_http.auth import AddressPolicy, TokenVerifier, bearer_token, parse_address, parse_networks, parse_tokens

# ---------------------------------------------------------------- tokens


def test_tokens_are_kept_as_digests_with_their_clients_and_hashes_may_be_configured() -> None:
    digest = hashlib.sha256(b"second").hexdigest()
    grants = parse_tokens(f" first = fanteam ; sha256:{digest}=casino, fanteam;; SHA256:{digest.upper()}=* ")
    assert [g.digest for g in grants] == [
        hashlib.sha256(b"first").digest(), bytes.fromhex(digest), bytes.fromhex(digest)]
    assert [g.clients for g in grants] == [frozenset({"fanteam"}), frozenset({"casino", "fanteam"}), frozenset({"*"})]


def test_the_edge_and_the_core_read_tokens_with_one_parser() -> None:
    """DESIGN 5: each edge token is allowed a set of clients, like a core token: the same format, one rule."""
    from clients import tokens
    from wallet_core.grpc_api import auth as core_auth

    assert core_auth.parse_token_spec is tokens.parse_token_spec
    spec = "a=fanteam,casino;b==*;sha256:" + "ab" * 32 + "=fanteam"
    assert parse_tokens(spec) == core_auth.parse_token_spec(spec)
    assert parse_tokens("tok==fanteam")[0].digest == hashlib.sha256(b"tok=").digest(), "a token may end in '='"


@pytest.mark.parametrize("entry", ["sha256:", "sha256:abc", "sha256:" + "g" * 64, "sha256:" + "a" * 63])
def test_a_malformed_hash_entry_is_refused_without_echoing_it(entry: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_tokens(f"good=fanteam;{entry}=fanteam")
    assert "entry 2" in str(caught.value)
    assert entry.removeprefix("sha256:") not in str(caught.value).replace("sha256:", "") or entry == "sha256:"


@pytest.mark.parametrize("setting", ["tok", "tok1,tok2", "tok=", "=fanteam", "tok= , ;x=y"])
def test_a_token_without_clients_is_refused_without_echoing_it(setting: str) -> None:
    with pytest.raises(ValueError, match="token entry 1") as caught:
        parse_tokens(setting)
    assert "tok" not in str(caught.value).replace("token", "")


def test_no_tokens_means_an_empty_verifier() -> None:
    assert not TokenVerifier.from_setting("")
    assert not TokenVerifier.from_setting(" ; ;")
    assert not TokenVerifier.from_setting("").check("Bearer ")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Bearer", None), ("Bearer ", None),
        ("Basic abc", None), ("abc", None), ("", None), (None, None), ("Bearer a b", "a b"),
    ],
)
def test_bearer_header_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_only_configured_tokens_pass_and_each_brings_its_clients() -> None:
    hashed = hashlib.sha256(b"hashed-one").hexdigest()
    verifier = TokenVerifier.from_setting(f"alpha=fanteam;beta=casino,fanteam;sha256:{hashed}=*")
    assert verifier.check("Bearer alpha")
    assert verifier.check("Bearer beta")
    assert verifier.check("Bearer hashed-one")
    assert verifier.grant("Bearer alpha").clients == {"fanteam"}  # type: ignore[union-attr]
    assert verifier.grant("Bearer beta").clients == {"casino", "fanteam"}  # type: ignore[union-attr]
    assert verifier.grant("Bearer hashed-one").allows("anyone")  # type: ignore[union-attr]
    assert not verifier.grant("Bearer alpha").allows("casino")  # type: ignore[union-attr]
    for wrong in ["Bearer alph", "Bearer alphaa", "Bearer ALPHA", f"Bearer {hashed}", f"Bearer sha256:{hashed}",
                  "alpha", "Basic alpha", "Bearer", None, "Bearer \udcff"]:
        assert not verifier.check(wrong), wrong
        assert verifier.grant(wrong) is None


def test_the_clients_the_core_token_needs_are_the_union_of_the_edge_tokens() -> None:
    assert TokenVerifier.from_setting("a=fanteam;b=casino,fanteam").clients() == {"casino", "fanteam"}
    assert TokenVerifier.from_setting("a=fanteam;b=*").clients() == {"*"}


def test_every_configured_digest_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the time taken does not say which token (or whether an early one) matched."""
    import hmac  # what clients.tokens compares with

    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verifier = TokenVerifier.from_setting("one=a;two=b;three=c")
    assert verifier.check("Bearer one")
    assert len(compared) == 3


# ---------------------------------------------------------------- networks and addresses


def test_networks_parse_and_bad_ones_are_named() -> None:
    assert parse_networks("10.0.0.0/8, 2001:db8::/32,192.0.2.7") == [
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"), ipaddress.ip_network("192.0.2.7/32"),
    ]
    assert parse_networks("") == []
    for bad in ["10.0.0.1/8", "10.0.0.0/33", "example.com", "10.0.0"]:
        with pytest.raises(ValueError, match="is not a network"):
            parse_networks(f"10.0.0.0/8,{bad}")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("203.0.113.7", "203.0.113.7"), (" 203.0.113.7 ", "203.0.113.7"), ("203.0.113.7:4431", "203.0.113.7"),
        ("::1", "::1"), ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"), ("unknown", None), ("", None), ("[::1", None), ("_hidden", None),
    ],
)
def test_addresses_from_peers_and_forwarded_headers(text: str, address: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == address


def test_no_allowlist_permits_any_address() -> None:
    policy = AddressPolicy.from_settings("", "")
    assert not policy.enabled
    assert policy.permits("198.51.100.1") and policy.permits(None)


def test_the_peer_must_be_inside_the_allowlist() -> None:
    policy = AddressPolicy.from_settings("203.0.113.0/24,2001:db8::/32", "")
    assert policy.permits("203.0.113.7")
    assert policy.permits("2001:db8::5")
    assert policy.permits("::ffff:203.0.113.9")
    assert not policy.permits("198.51.100.1")
    assert not policy.permits(None)
    assert not policy.permits("garbage")


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    policy = AddressPolicy.from_settings("203.0.113.0/24", "10.0.0.0/8")
    assert not policy.permits("198.51.100.1", ["203.0.113.7"])  # an untrusted peer cannot claim an address
    assert policy.permits("10.1.1.1", ["203.0.113.7"])  # a trusted proxy can


def test_the_first_untrusted_forwarded_address_from_the_right_is_the_client() -> None:
    policy = AddressPolicy.from_settings("203.0.113.0/24", "10.0.0.0/8")
    # the client wrote a fake allowed address on the left; the proxy appended the real one
    assert not policy.permits("10.0.0.2", ["203.0.113.7, 198.51.100.1"])
    assert policy.client_address("10.0.0.2", ["203.0.113.7, 198.51.100.1"]) == ipaddress.ip_address("198.51.100.1")
    # two proxies in a row, both trusted: skip them
    assert policy.permits("10.0.0.2", ["198.51.100.1, 203.0.113.7, 10.0.0.3"])
    # several headers read as one list, in order
    assert policy.permits("10.0.0.2", ["198.51.100.1", "203.0.113.7"])


def test_an_unreadable_forwarded_entry_refuses() -> None:
    policy = AddressPolicy.from_settings("203.0.113.0/24", "10.0.0.0/8")
    assert not policy.permits("10.0.0.2", ["203.0.113.7, unknown"])


def test_a_trusted_proxy_without_forwarded_for_is_itself_the_client() -> None:
    policy = AddressPolicy.from_settings("203.0.113.0/24", "10.0.0.0/8")
    assert not policy.permits("10.0.0.2", [])
    assert policy.client_address("10.0.0.2", ["10.0.0.9"]) == ipaddress.ip_address("10.0.0.9")
