"""Each row states the record format it was written in: a nullable record_format column.

A row without one (NULL) was written by intentq 0.1 and reads as it always did. The column
is nullable and has no default, so adding it rewrites no row and holds the table's lock
only for the catalog change; 0.1 workers, which never name it, go on working.

Revision ID: 0002_compat_0001
Revises: 0001_compat_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from intentq.migrations.online import short_lock_wait

revision = "0002_compat_0001"
down_revision = "0001_compat_0001"
branch_labels = None
depends_on = None


def upgrade(table_name: str) -> None:
    short_lock_wait()
    with op.batch_alter_table(table_name) as batch:
        batch.add_column(sa.Column("record_format", sa.SmallInteger, nullable=True))


def downgrade(table_name: str) -> None:
    short_lock_wait()
    with op.batch_alter_table(table_name) as batch:
        batch.drop_column("record_format")
