"""The dead-letter table as intentq 0.1 made it; a table 0.1 made is adopted as it is.

Revision ID: 0001_compat_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intentq.migrations.online import create_index_concurrently, table_exists

revision = "0001_compat_0001"
down_revision = None
branch_labels = None
depends_on = None


def columns() -> list[sa.Column[object]]:
    """The columns of this revision, frozen here: later code changes the live definition.

    Times are ``timestamptz`` on PostgreSQL and naive UTC text on SQLite (``UtcDateTime``).
    """
    when = sa.DateTime(timezone=True)
    return [
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("tool", sa.Text),
        sa.Column("key", sa.Text),
        sa.Column("intent_id", sa.Text),
        sa.Column("error_type", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("source_transport", sa.Text),
        sa.Column("source_queue", sa.Text),
        sa.Column("first_seen", when),
        sa.Column("dead_at", when, nullable=False),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("last_replayed_at", when),
    ]


def indexes(name: str) -> dict[str, list[str]]:
    """Index name -> columns: the operator's filters, each with ``id`` for paging."""
    return {
        f"ix_{name}_tool": ["tool", "id"],
        f"ix_{name}_reason": ["reason", "id"],
        f"ix_{name}_dead_at": ["dead_at"],
    }


def upgrade(table_name: str) -> None:
    if table_exists(table_name):
        # Made by intentq 0.1's create_schema (no version table): keep it and its letters,
        # and build an index it may lack without blocking its writers.
        for name, cols in indexes(table_name).items():
            create_index_concurrently(name, table_name, cols)
        return
    op.create_table(table_name, *columns())
    for name, cols in indexes(table_name).items():
        op.create_index(name, table_name, cols)


def downgrade(table_name: str) -> None:
    op.drop_table(table_name)
