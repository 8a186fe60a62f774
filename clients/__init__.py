"""Typed Python client of the wallet gRPC API (filled in below)."""
