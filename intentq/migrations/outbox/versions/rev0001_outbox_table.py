"""The outbox table, its relay lease row and (PostgreSQL) the NOTIFY trigger.

Revision ID: 0001_compat_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_compat_0001"
down_revision = None
branch_labels = None
depends_on = None

# The database's clock as seconds since the epoch, frozen here: the live one is
# intentq.outbox.table.now_sql.
NOW = {
    "postgresql": "(extract(epoch from clock_timestamp())::double precision)",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def columns(dialect: str) -> list[sa.Column[object]]:
    """The columns of this revision; times are epoch seconds on the database's clock."""
    now = sa.text(NOW.get(dialect, NOW["postgresql"]))
    seconds: sa.Double[float] = sa.Double()
    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("intent_id", sa.String(36), nullable=False, unique=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("tool", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("traceparent", sa.Text),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("group_id", sa.Text),
        sa.Column("state", sa.String(8), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("created_at", seconds, nullable=False, server_default=now),
        sa.Column("available_at", seconds, nullable=False, server_default=now),
        sa.Column("sent_at", seconds),
    ]


def indexes(name: str) -> dict[str, tuple[list[str], str]]:
    """Partial indexes, name -> (columns, WHERE): each relay query reads only its rows."""
    return {
        f"ix_{name}_pending": (["id"], "state = 'pending'"),
        f"ix_{name}_group": (
            ["queue", "group_id", "id"],
            "state = 'pending' AND group_id IS NOT NULL",
        ),
        f"ix_{name}_sent": (["sent_at"], "state = 'sent'"),
        f"ix_{name}_failed": (["id"], "state = 'failed'"),
    }


def upgrade(table_name: str) -> None:
    dialect = op.get_context().dialect.name
    op.create_table(table_name, *columns(dialect))
    for name, (cols, where) in indexes(table_name).items():
        op.create_index(
            name, table_name, cols, postgresql_where=sa.text(where), sqlite_where=sa.text(where)
        )
    # One row: which relay holds the table (SQLite runs one relay at a time).
    lease = op.create_table(
        f"{table_name}_relay",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.Double(), nullable=False),
    )
    op.bulk_insert(lease, [{"name": "relay", "owner": None, "lease_until": 0.0}])
    if dialect == "postgresql":
        quote = op.get_context().impl.dialect.identifier_preparer.quote
        function = quote(f"{table_name}_notify")
        # The relay LISTENs on the table's name; one NOTIFY per inserting statement, sent
        # when the application's transaction commits (never for a rollback).
        channel = table_name.replace("'", "''")
        op.execute(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {function} AFTER INSERT ON {quote(table_name)} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def downgrade(table_name: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        quote = op.get_context().impl.dialect.identifier_preparer.quote
        op.execute(f"DROP FUNCTION IF EXISTS {quote(table_name + '_notify')}() CASCADE")
    op.drop_table(f"{table_name}_relay")
    op.drop_table(table_name)
