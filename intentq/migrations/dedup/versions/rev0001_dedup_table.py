"""The dedup table as intentq 0.1 made it; a table 0.1 made is adopted as it is.

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
    """The columns of this revision, frozen here: later code changes the live definition."""
    return [
        sa.Column("store_key", sa.String(512), primary_key=True),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    ]


def indexes(name: str) -> dict[str, list[str]]:
    """Index name -> columns: gc() finds expired rows by ``expires_at``."""
    return {f"ix_{name}_expires_at": ["expires_at"]}


def upgrade(table_name: str) -> None:
    if table_exists(table_name):
        # Made by intentq 0.1's create_schema (no version table): keep it and its rows, and
        # build an index it may lack without blocking its writers.
        for name, cols in indexes(table_name).items():
            create_index_concurrently(name, table_name, cols)
        return
    op.create_table(table_name, *columns())
    for name, cols in indexes(table_name).items():
        op.create_index(name, table_name, cols)


def downgrade(table_name: str) -> None:
    op.drop_table(table_name)
