"""What every family's ``env.py`` runs: configure Alembic for one table and run its revisions.

The runner passes everything through ``config.attributes``: ``table_name`` (tables are
named by the settings, so each revision takes the name as an argument), ``version_table``,
and the ``connection`` (online) or the ``dialect`` name (offline, ``intentq init --sql``).
The ``alembic`` command line may name the table with ``-x table=NAME`` instead.
"""

from __future__ import annotations

from typing import Any


def run_migrations() -> None:
    """Run the migrations Alembic's command asked for, online or as SQL text."""
    from alembic import context

    config = context.config
    attributes = config.attributes
    x_args = context.get_x_argument(as_dictionary=True)
    table = str(attributes.get("table_name") or x_args["table"])
    options: dict[str, Any] = {
        "version_table": attributes.get("version_table") or f"{table}_version",
        # One transaction per revision: a long upgrade keeps what it finished, and a
        # revision may leave its transaction for an autocommit block (CREATE INDEX
        # CONCURRENTLY) without committing half of another revision.
        "transaction_per_migration": True,
    }
    if context.is_offline_mode():
        dialect = str(attributes.get("dialect") or x_args.get("dialect", "postgresql"))
        context.configure(
            dialect_name=dialect,
            literal_binds=True,
            render_as_batch=dialect == "sqlite",
            **options,
        )
        with context.begin_transaction():
            context.run_migrations(table_name=table)
        return
    connection = attributes.get("connection")
    if connection is None:  # the alembic command line: sqlalchemy.url from its ini file
        from sqlalchemy import create_engine

        with create_engine(str(config.get_main_option("sqlalchemy.url"))).connect() as own:
            attributes["connection"] = own
            try:
                run_migrations()
            finally:
                del attributes["connection"]
            own.commit()
        return
    context.configure(
        connection=connection,
        # SQLite alters a table by copying it (Alembic's batch mode).
        render_as_batch=connection.dialect.name == "sqlite",
        **options,
    )
    with context.begin_transaction():
        context.run_migrations(table_name=table)
