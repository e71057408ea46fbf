"""Shared fixtures: real services live in tests/support/services.py."""

pytest_plugins = ["tests.support.services"]
