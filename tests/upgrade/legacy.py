"""The 0.1 fixtures: its DDL per dialect and the rows its stores wrote, loaded as they are."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def ddl(family: str, dialect: str, table: str) -> list[str]:
    """0.1's CREATE statements for ``table`` (``family``: dedup or dlq)."""
    text = (FIXTURES / f"{family}_0.1.{dialect}.sql").read_text().replace("{table}", table)
    return [s.strip() for s in text.split(";") if s.strip()]


def rows() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "rows_0.1.json").read_text()))


def create_0_1(engine: sa.Engine, dedup: str | None = None, dlq: str | None = None) -> None:
    """The tables as 0.1's ``create_schema`` made them: no version table."""
    with engine.begin() as conn:
        for family, table in (("dedup", dedup), ("dlq", dlq)):
            for statement in ddl(family, engine.dialect.name, table) if table else []:
                conn.exec_driver_sql(statement)


def load_0_1(engine: sa.Engine, dedup: str | None = None, dlq: str | None = None) -> None:
    """0.1's tables and the rows 0.1 wrote. Dedup times move by the fixture's age, so its
    records are as live as when they were written; the rest is inserted as stored."""
    create_0_1(engine, dedup, dlq)
    fixture = rows()
    shift = datetime.now(UTC).timestamp() - float(fixture["written_at"])
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for row in fixture["dedup"] if dedup else []:
            values = dict(row)
            for column in ("lease_until", "created_at", "updated_at", "expires_at"):
                if values[column]:
                    values[column] += shift
            _insert(conn, dedup, values)
        for row in fixture["dlq"] if dlq else []:
            values = dict(row, body=bytes.fromhex(row["body"]))
            if pg:  # SQLite's naive UTC text, as timestamptz
                for column in ("first_seen", "dead_at", "last_replayed_at"):
                    if values[column]:
                        values[column] = datetime.fromisoformat(values[column]).replace(tzinfo=UTC)
            _insert(conn, dlq, values)


def _insert(conn: sa.Connection, table: str | None, values: dict[str, Any]) -> None:
    assert table is not None
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in values)
    params = ", ".join(f":{c}" for c in values)
    conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), values)
