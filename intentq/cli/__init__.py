"""The ``intentq`` command."""

from intentq.cli.app import app, main

__all__ = ["app", "main"]
