"""Indexes for keyset pages in (dead_at, id) order and for stats read from the index alone.

Letters are listed oldest first by ``(dead_at, id)``: a page continues after the last
``(dead_at, id)`` it showed, so a page deep in a table of a million letters costs what the
first one does. Each filter an operator uses leads an index followed by ``(dead_at, id)``,
so a filtered page, a filtered count and a batch of a filtered purge are one index range:

- ``(tool, dead_at, id, reason)``: ``--tool``, alone or with ``--since``/``--until``;
- ``(reason, dead_at, id, tool)``: ``--reason``;
- ``(dead_at, id, tool, reason)``: no filter, or an age alone.

The trailing ``reason`` and ``tool`` never change the order (``id`` is unique); they let
``stats`` group by tool, reason and age reading the index alone, never a letter's body.
The indexes of revision 1 (``(tool, id)``, ``(reason, id)``, ``(dead_at)``) serve none of
these queries and are dropped once the new ones are built.

On PostgreSQL each index is built (and each old one dropped) ``CONCURRENTLY``, outside any
transaction, so workers go on writing letters meanwhile; an interrupted build is rebuilt on
the next ``intentq init``. Code written for revision 1 runs on this table unchanged.

Revision ID: 0002_compat_0001
Revises: 0001_compat_0001
"""

from __future__ import annotations

from intentq.migrations.online import create_index_concurrently, drop_index_concurrently

revision = "0002_compat_0001"
down_revision = "0001_compat_0001"
branch_labels = None
depends_on = None


def indexes(name: str) -> dict[str, list[str]]:
    """Index name -> columns in this revision, frozen here."""
    return {
        f"ix_{name}_tool_dead_at": ["tool", "dead_at", "id", "reason"],
        f"ix_{name}_reason_dead_at": ["reason", "dead_at", "id", "tool"],
        f"ix_{name}_dead_at_id": ["dead_at", "id", "tool", "reason"],
    }


def previous_indexes(name: str) -> dict[str, list[str]]:
    """The indexes of revision 1, which this one replaces."""
    return {
        f"ix_{name}_tool": ["tool", "id"],
        f"ix_{name}_reason": ["reason", "id"],
        f"ix_{name}_dead_at": ["dead_at"],
    }


def upgrade(table_name: str) -> None:
    # The new indexes first: the table is never left without one for its filters.
    for name, cols in indexes(table_name).items():
        create_index_concurrently(name, table_name, cols)
    for name in previous_indexes(table_name):
        drop_index_concurrently(name)


def downgrade(table_name: str) -> None:
    for name, cols in previous_indexes(table_name).items():
        create_index_concurrently(name, table_name, cols)
    for name in indexes(table_name):
        drop_index_concurrently(name)
