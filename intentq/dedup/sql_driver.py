"""PostgreSQL's hot path: the store's statements compiled once and run on psycopg directly.

SQLAlchemy builds and compiles each statement once and still owns the pool, transactions
and error classes; a call then costs one execute on the driver's connection instead of a
pass through SQLAlchemy's execution machinery (which costs more than the statement itself).

Batch claims use psycopg's pipeline mode: every entry's claim statement goes out before any
answer is read, one round trip for the batch. The server runs them in order in one implicit
transaction that ends at the batch's Sync. Entries run in key order, so workers claiming
overlapping batches lock rows in the same order and cannot deadlock; a later entry sees what
an earlier one wrote (the same key twice: Busy).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import ClauseElement

from intentq.dedup.base import Claim, ClaimRequest
from intentq.dedup.sql_engine import translated
from intentq.dedup.sql_statements import acquired, claim_params, pick, settle

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from intentq.dedup.sql import SqlDedupStore


class Compiled:
    """One statement's SQL text and its constant parameters."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)  # literals bound at compile time

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **params}


class Driver:
    """The PostgreSQL store's calls, each one statement on a pooled psycopg connection."""

    def __init__(self, store: SqlDedupStore) -> None:
        import psycopg

        statements, dialect = store.statements, store.engine.dialect
        assert statements.claim_once is not None
        self.claim_sql = Compiled(statements.claim_once, dialect)
        # Known once here: reading column names from every cursor costs more than the rows.
        self.claim_columns = tuple(c.name for c in statements.claim_once.selected_columns)
        self.finish = Compiled(statements.finish, dialect)
        self.release = Compiled(statements.release, dialect)
        self.extend = Compiled(statements.extend, dialect)
        self.pipelines = psycopg.Pipeline.is_supported()
        self._error = psycopg.Error
        self._store = store

    @contextmanager
    def connection(self, what: str) -> Iterator[Any]:
        """A pooled psycopg connection in autocommit mode; driver errors translated.

        A raw pool checkout: SQLAlchemy's ``Connection`` and its per-checkout isolation
        switching would cost more than the statement. On a pool shared with transactions,
        autocommit is switched on for the call and off again before the connection goes back.
        """
        store = self._store
        switch = not store.autocommit_pool
        with translated(what):
            try:
                fairy = (store.engine if switch else store.autocommit_engine).raw_connection()
            except self._error as exc:
                raise sa_exc.DBAPIError.instance(None, None, exc, self._error) from exc
            driver = fairy.dbapi_connection
            assert driver is not None
            try:
                if switch:
                    driver.autocommit = True
                yield driver
            except self._error as exc:
                broken = bool(getattr(driver, "broken", False) or driver.closed)
                if broken:
                    fairy.invalidate(exc)  # the pool must not hand this connection out again
                # SQLAlchemy's error classes, so that translated() judges it like any other.
                raise sa_exc.DBAPIError.instance(
                    None, None, exc, self._error, connection_invalidated=broken
                ) from exc
            finally:
                if switch and not driver.closed:
                    driver.autocommit = False
                fairy.close()

    def execute(self, what: str, statement: Compiled, params: Mapping[str, Any]) -> list[Any]:
        """Run an owner-only UPDATE; the rows it returned, or one empty row per row changed."""
        with self.connection(what) as driver:
            cursor = driver.execute(statement.sql, statement.bind(params))
            if cursor.description is not None:
                return list(cursor.fetchall())
            return [()] * max(cursor.rowcount, 0)

    def claim(self, params: dict[str, Any]) -> Claim | None:
        """One claim statement; ``None`` if a concurrent claim won a race (ask again)."""
        with self.connection("claim") as driver:
            cursor = driver.execute(self.claim_sql.sql, self.claim_sql.bind(params))
            return _answer(cursor, self.claim_columns, params)

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims in request order, pipelined; ``None`` where a concurrent claim won a race."""
        store = self._store
        params = [
            claim_params(
                store.record_key(r.tool, r.key),
                r.tool,
                r.key,
                r.fingerprint,
                r.lease,
                r.ttl,
                secrets.token_hex(16),
                secrets.token_hex(16),
            )
            for r in requests
        ]
        # sorted() is stable: the same key twice keeps its order in the batch.
        order = sorted(range(len(params)), key=lambda i: params[i]["sk"])
        answers: list[Claim | None] = [None] * len(params)
        with self.connection("claim_many") as driver:
            with driver.pipeline():
                sql = self.claim_sql.sql
                cursors = [(i, driver.execute(sql, self.claim_sql.bind(params[i]))) for i in order]
            for i, cursor in cursors:
                answers[i] = _answer(cursor, self.claim_columns, params[i])
        return answers


def _answer(cursor: Any, columns: tuple[str, ...], params: dict[str, Any]) -> Claim | None:
    rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for source in ("ins", "upd"):
        row = pick(rows, source)
        if row is not None:
            return acquired(row, params["taken"])
    return settle(pick(rows, "cur"), params["fp"])
