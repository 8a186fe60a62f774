"""Helpers shared by the test suites: databases, dumps, invariant checks."""
