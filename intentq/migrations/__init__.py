"""Versioned SQL schemas: one Alembic script directory per table family, run from code.

``dedup/`` holds the SQL dedup table's revisions, ``dlq/`` the dead-letter table's,
``outbox/`` the transactional outbox's (in the application's database); each
table keeps its version in a table of its own (``{table}_version``), so it never meets the
application's Alembic history. ``runner`` applies them (``intentq init``), reports them
(``--check``) and prints them (``--sql``); ``versions`` says which revision a code needs and
which it can use; ``online`` holds what a revision uses to change a busy PostgreSQL table.
"""

from __future__ import annotations

from intentq.errors import SchemaTooNew
from intentq.migrations.runner import (
    Applied,
    Status,
    Step,
    Target,
    check,
    offline_sql,
    status,
    upgrade,
)
from intentq.migrations.versions import DEDUP, DLQ, OUTBOX, Family, Version

__all__ = [
    # what migrates
    "DEDUP",
    "DLQ",
    "OUTBOX",
    "Family",
    "Target",
    # where a database is
    "SchemaTooNew",
    "Status",
    "Step",
    "Version",
    # what to do about it
    "Applied",
    "check",
    "offline_sql",
    "status",
    "upgrade",
]
