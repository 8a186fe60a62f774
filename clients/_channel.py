"""What both clients share: channel credentials and options, metadata, the retry policy."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc
from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from clients.errors import Unavailable

DEFAULT_TIMEOUT = 5.0
DEFAULT_ATTEMPTS = 3

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    # the client does its own retries (on UNAVAILABLE only, every wallet call is idempotent)
    ("grpc.enable_retries", 0),
    # a core that comes back is reached within a second: gRPC's default reconnect backoff grows to
    # two minutes, during which every call would fail at once although the core is up again
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


def credentials(tls: bool, root_certificates: bytes | None) -> grpc.ChannelCredentials | None:
    """TLS when asked for or when a CA is given (the server is verified against it); else plaintext."""
    if not tls and root_certificates is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def open_channel(
    target: str, *, tls: bool, root_certificates: bytes | None, options: Sequence[tuple[str, Any]], aio: bool
) -> Any:
    """A channel to the core, plaintext or TLS, blocking (`grpc`) or asyncio (`grpc.aio`)."""
    creds = credentials(tls, root_certificates)
    opts = [*CHANNEL_OPTIONS, *options]
    module: Any = grpc.aio if aio else grpc
    if creds:
        return module.secure_channel(target, creds, options=opts)
    return module.insecure_channel(target, options=opts)


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata for a bearer token; `None` means "from WALLET_TOKEN", "" means no token."""
    if token is None:
        token = os.environ.get("WALLET_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


CALL_METADATA: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("wallet_call_metadata", default=())


@contextmanager
def call_metadata(**pairs: str) -> Iterator[None]:
    """Send these metadata with every call made in this context (thread or asyncio task), e.g.

        with call_metadata(x_request_id="4bf92f35"):   # sent as `x-request-id`
            await wallet.debit(items)
    """
    keys = {name.replace("_", "-").lower(): value for name, value in pairs.items()}
    if "authorization" in keys:
        raise ValueError("the token is the client's `token`, not call metadata")
    previous = CALL_METADATA.set((*CALL_METADATA.get(), *keys.items()))
    try:
        yield
    finally:
        CALL_METADATA.reset(previous)


def retry_policy(max_attempts: int) -> dict[str, Any]:
    """tenacity arguments: retry UNAVAILABLE with exponential backoff and jitter, then re-raise."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    return {
        "stop": stop_after_attempt(max_attempts),
        "wait": wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
        "retry": retry_if_exception_type(Unavailable),
        "reraise": True,
    }
