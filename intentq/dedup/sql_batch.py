"""PostgreSQL batch claims: the claim statement of every entry, pipelined in one round trip.

psycopg's pipeline mode sends all statements before reading any answer, and the server runs
them in order inside one implicit transaction that ends at the batch's Sync. Entries run in
key order, so two workers claiming overlapping batches lock rows in the same order and cannot
deadlock. A later entry sees what an earlier one wrote (the same key twice: Busy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from intentq.dedup.base import Claim, ClaimRequest
from intentq.dedup.sql_engine import translated
from intentq.dedup.sql_statements import acquired, claim_params, pick, settle

if TYPE_CHECKING:
    from intentq.dedup.sql import SqlDedupStore


class PipelinedClaims:
    """The PostgreSQL claim statement compiled once, for use on the driver's connection."""

    def __init__(self, store: SqlDedupStore) -> None:
        import psycopg

        assert store.statements.claim_once is not None
        compiled = store.statements.claim_once.compile(dialect=store.engine.dialect)
        self.sql = compiled.string
        self.defaults = compiled.construct_params(_check=False)
        self.driver_error = psycopg.Error
        self.supported = psycopg.Pipeline.is_supported()
        self._store = store

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims in request order; ``None`` where a concurrent claim won a race (ask again)."""
        import uuid

        store = self._store
        params = [
            claim_params(
                store.record_key(r.tool, r.key),
                r.tool,
                r.key,
                r.fingerprint,
                r.lease,
                r.ttl,
                uuid.uuid4().hex,
                uuid.uuid4().hex,
            )
            for r in requests
        ]
        # sorted() is stable: the same key twice keeps its order in the batch.
        order = sorted(range(len(params)), key=lambda i: params[i]["sk"])
        answers: list[Claim | None] = [None] * len(params)
        with translated("claim_many"), store.autocommit_engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            try:
                with driver.pipeline():
                    cursors = [
                        (i, driver.execute(self.sql, {**self.defaults, **params[i]})) for i in order
                    ]
                for i, cursor in cursors:
                    names = [column.name for column in cursor.description or ()]
                    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                    answers[i] = _answer(rows, params[i])
            except self.driver_error as exc:
                broken = bool(getattr(driver, "broken", False) or driver.closed)
                if broken:
                    conn.invalidate(exc)  # the pool must not hand this connection out again
                raise sa_exc.DBAPIError.instance(
                    self.sql, None, exc, self.driver_error, connection_invalidated=broken
                ) from exc
        return answers


def _answer(rows: list[dict[str, Any]], params: dict[str, Any]) -> Claim | None:
    for source in ("ins", "upd"):
        row = pick(rows, source)
        if row is not None:
            return acquired(row, params["taken"])
    return settle(pick(rows, "cur"), params["fp"])
