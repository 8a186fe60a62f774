"""The edge's HTTP protocol: uvicorn's httptools parser (C), with the header deadline on top."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from edge_http.server import MALFORMED, protocol_with_deadline


def test_the_edge_parses_with_httptools_and_keeps_its_header_deadline() -> None:
    protocol = protocol_with_deadline(2.5)
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.header_timeout == 2.5
    assert b'"invalid_request"' in MALFORMED
