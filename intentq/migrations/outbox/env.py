"""Alembic's entry point for this script directory: the shared environment runs it."""

from __future__ import annotations

from intentq.migrations.environment import run_migrations

run_migrations()
