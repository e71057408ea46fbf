"""The SQL store's statements, built once per table and dialect and run with parameters.

Every statement reads the database clock as of its own start (``db_now``: fixed for the
statement on both databases), so all its comparisons and writes agree on ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Delete,
    Double,
    Integer,
    Select,
    SmallInteger,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ColumnClause, CompoundSelect, TableValuedAlias

from intentq.dedup import codec
from intentq.dedup.base import MIN_RETRY_AFTER, Acquired, Busy, Cached, Claim, Dead, Mismatch
from intentq.dedup.base import State as S
from intentq.dedup.sql.schema import db_now

# gc() deletes at most this many rows per statement, so it never holds long locks.
GC_BATCH = 1000
# What a claim needs to read back from a record.
CLAIM_COLUMNS = (
    "state",
    "fingerprint",
    "token",
    "lease_until",
    "attempts",
    "result",
    "error",
    "expires_at",
    "record_format",
)


def _p(name: str, type_: Any) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def _const(value: str) -> ColumnElement[str]:
    """A constant written into the SQL, not sent as a parameter (each one costs per call)."""
    assert "'" not in value
    return literal_column(f"'{value}'", String)


IN_PROGRESS = _const(S.IN_PROGRESS.value)
EMPTY = _const("")
ZERO = literal_column("0.0", Double)
ONE = literal_column("1", Integer)
# Every row this code writes or takes over states its record format.
FORMAT = literal_column(str(codec.RECORD_FORMAT), SmallInteger)


class Statements:
    """Parametrised statements for one table.

    Parameter names never equal a column name: SQLAlchemy would add such a parameter to an
    UPDATE's SET clause.
    """

    def __init__(self, table: Table, dialect: Dialect, gc_batch: int = GC_BATCH) -> None:
        t = self.table = table
        self.gc_batch = gc_batch
        self.dialect = dialect.name
        now = self.now = db_now(dialect)
        sk = t.c.store_key == _p("sk", String)
        owned = and_(
            sk,
            t.c.state == IN_PROGRESS,
            t.c.token == _p("owner", String),
            t.c.token != EMPTY,  # a released record has no owner, whatever token is passed
            t.c.expires_at > now,
        )
        self.finish: Update = (
            t.update()
            .where(owned)
            .values(
                state=_p("new_state", String),
                result=_p("new_result", Text),
                error=_p("new_error", Text),
                token=EMPTY,
                lease_until=ZERO,
                updated_at=now,
                expires_at=now + _p("ttl", Double),
            )
        )
        self.complete_many: Update | None = None
        if self.dialect == "postgresql":
            # Waiters LISTEN on the table's channel (intentq.waiting); the notification goes
            # out when the transaction commits, so a transactional completion's rows are
            # visible by the time a waiter reads the record.
            notify = func.pg_notify(_const(notify_channel(t.name)), t.c.store_key)
            self.finish = self.finish.returning(notify)
            self.complete_many = self._pg_complete_many().returning(t.c.store_key, notify)
        self.release: Update = (
            t.update().where(owned).values(token=EMPTY, lease_until=ZERO, updated_at=now)
        )
        until = now + _p("lease", Double)
        self.extend: Update = (
            t.update()
            .where(owned)
            .values(
                lease_until=until,
                updated_at=now,
                expires_at=case((t.c.expires_at < until, until), else_=t.c.expires_at),
            )
            .returning(t.c.lease_until)
        )
        self.get: Select[Any] = select(t).where(sk, t.c.expires_at > self.now)
        self.current: Select[Any] = select(t, self.now.label("now")).where(sk)
        self.forget = t.delete().where(sk).returning(t.c.expires_at > self.now)
        self.reset: Delete = t.delete().where(
            sk, t.c.state == _const(S.FAILED.value), t.c.expires_at > self.now
        )
        # The clock as a one-row subquery, read once: the expires_at index bounds the scan
        # whatever a database makes of a clock call in the WHERE.
        now_once = select(self.now).scalar_subquery()
        expired = select(t.c.store_key).where(t.c.expires_at <= now_once).limit(gc_batch)
        self.gc: Delete = delete(t).where(t.c.store_key.in_(expired.scalar_subquery()))
        # A takeover returns what ``acquired`` reads.
        self.claim_takeover: Update = self._takeover().returning(t.c.token, t.c.attempts)
        if self.dialect == "postgresql":
            self.claim_first: CompoundSelect[Any] | None = self._pg_claim()
            self.claim_many: CompoundSelect[Any] | None = self._pg_claim_many()
        else:
            self.claim_first = self.claim_many = None
            self.claim_insert = (
                sqlite.insert(t)
                .values(self._new_row(self.now))
                .on_conflict_do_nothing(index_elements=[t.c.store_key])
                .returning(t.c.token, t.c.attempts)
            )

    def _new_row(self, now: ColumnElement[float]) -> dict[str, Any]:
        return {
            "store_key": _p("sk", String),
            "tool": _p("tool_name", String),
            "key": _p("idem_key", String),
            "state": IN_PROGRESS,
            "fingerprint": _p("fp", String),
            "token": _p("fresh", String),
            "lease_until": now + _p("lease", Double),
            "attempts": ONE,
            "result": null(),
            "error": null(),
            "created_at": now,
            "updated_at": now,
            "expires_at": now + _p("life", Double),
            "record_format": FORMAT,
        }

    def _takeover(self) -> Update:
        """Renew an expired record, or take over an in-progress one whose lease ran out.

        The WHERE holds on the row as it is when the UPDATE locks it, so of two racers that
        both saw an expired lease only the first updates; the second finds a live lease.
        Of the two tokens passed, ``taken`` marks a takeover from a previous owner (the
        UPDATE cannot return the old token) and ``fresh`` a record nobody owned.
        """
        t, now = self.table, self.now
        expired = t.c.expires_at <= now
        until = now + _p("lease", Double)
        return (
            t.update()
            .where(
                t.c.store_key == _p("sk", String),
                or_(
                    expired,
                    and_(
                        t.c.state == IN_PROGRESS,
                        t.c.lease_until <= now,
                        t.c.fingerprint == _p("fp", String),
                        # Never rewrite a live record a newer intentq wrote (settle refuses it).
                        or_(t.c.record_format.is_(None), t.c.record_format <= FORMAT),
                    ),
                ),
            )
            .values(
                state=IN_PROGRESS,
                fingerprint=_p("fp", String),
                token=case(
                    (or_(expired, t.c.token == EMPTY), _p("fresh", String)),
                    else_=_p("taken", String),
                ),
                lease_until=until,
                attempts=case((expired, ONE), else_=t.c.attempts + ONE),
                result=null(),
                error=null(),
                created_at=case((expired, now), else_=t.c.created_at),
                updated_at=now,
                expires_at=case(
                    (expired, now + _p("life", Double)),
                    (t.c.expires_at < until, until),
                    else_=t.c.expires_at,
                ),
                record_format=FORMAT,
            )
        )

    def _pg_claim_many(self) -> CompoundSelect[Any]:
        """A batch's first claim statements in one: insert every new key, read the others.

        ``_pg_claim`` over the entries (store key, tool, key, fingerprint, fresh token,
        lease, lifetime, and the entry's place ``n``), rows inserted in key order (so
        overlapping batches lock in the same order); each row answers with its
        ``store_key``. As in one claim, the read shares the insert's snapshot: a key a
        concurrent claim inserted meanwhile answers nothing, and a key given twice in the
        batch is inserted for its first entry only (its token says which).
        """
        t, now = self.table, self.now
        v = _entries(
            column("n", Integer), column("sk", String), column("tool", String),
            column("key", String), column("fp", String), column("fresh", String),
            column("lease", Double), column("life", Double),
        )  # fmt: skip
        # In key order, and of a key's entries the first goes in.
        new_rows = select(
            v.c.sk, v.c.tool, v.c.key, IN_PROGRESS, v.c.fp, v.c.fresh, now + v.c.lease, ONE,
            null(), null(), now, now, now + v.c.life, FORMAT,
        ).order_by(v.c.sk, v.c.n)  # fmt: skip
        columns = [
            "store_key", "tool", "key", "state", "fingerprint", "token", "lease_until",
            "attempts", "result", "error", "created_at", "updated_at", "expires_at",
            "record_format",
        ]  # fmt: skip
        claimed = [t.c.store_key, *(t.c[name] for name in CLAIM_COLUMNS)]
        ins = (
            postgresql.insert(t)
            .from_select(columns, new_rows)
            .on_conflict_do_nothing(index_elements=[t.c.store_key])
            .returning(*claimed)
            .cte("ins")
        )
        inserted = select(_const("ins").label("src"), *ins.c, now.label("now"))
        current = select(_const("cur").label("src"), *claimed, now.label("now")).where(
            t.c.store_key.in_(select(v.c.sk).scalar_subquery())
        )
        return union_all(inserted, current)

    def _pg_complete_many(self) -> Update:
        """Completions of a batch in one UPDATE, each row fenced by its own token.

        The entries (store key, token, result as JSON, TTL) come as one JSON parameter, so
        the statement's text is the same for every batch size and psycopg prepares it once.
        A key must appear once per statement: an UPDATE changes a row at most once, with
        whichever of its matching entries it meets first.
        """
        t, now = self.table, self.now
        v = _entries(
            column("sk", String), column("owner", String), column("res", Text),
            column("ttl", Double),
        )  # fmt: skip
        return (
            t.update()
            .where(
                t.c.store_key == v.c.sk,
                t.c.state == IN_PROGRESS,
                t.c.token == v.c.owner,
                t.c.token != EMPTY,
                t.c.expires_at > now,
            )
            .values(
                state=_const(S.COMPLETED.value),
                result=v.c.res,
                error=null(),
                token=EMPTY,
                lease_until=ZERO,
                updated_at=now,
                expires_at=now + v.c.ttl,
            )
        )

    def _pg_claim(self) -> CompoundSelect[Any]:
        """A claim's first statement: insert the record, or else read the one there.

        Both parts share one snapshot: a row inserted by a concurrent claim after it was
        taken is invisible to both, no row comes back and the caller re-runs. A takeover is
        a second statement (``claim_takeover``), sent only when the row read allows one: an
        UPDATE in this statement would cost every new key (the common case) a third of the
        claim's server time, for a row it never finds.
        """
        t, now = self.table, self.now
        claimed = [t.c[name] for name in CLAIM_COLUMNS]
        ins = (
            postgresql.insert(t)
            .values(self._new_row(now))
            .on_conflict_do_nothing(index_elements=[t.c.store_key])
            .returning(*claimed)
            .cte("ins")
        )
        inserted = select(_const("ins").label("src"), *ins.c, now.label("now"))
        current = select(_const("cur").label("src"), *claimed, now.label("now")).where(
            t.c.store_key == _p("sk", String)
        )
        return union_all(inserted, current)


def _entries(*columns: ColumnClause[Any]) -> TableValuedAlias:
    """A batch's entries as rows ``v``: one JSON array of objects, the ``batch`` parameter.

    One text parameter, encoded by the C JSON encoder, costs the client a fraction of what
    psycopg spends dumping a Python list per column as an array.
    """
    return (
        func.json_to_recordset(_p("batch", postgresql.JSON))
        .table_valued(*columns)
        .render_derived(name="v", with_types=True)
    )


def notify_channel(table_name: str) -> str:
    """The PostgreSQL channel a completion or failure in ``table_name`` is announced on;
    the payload is the record's ``store_key``."""
    return f"{table_name}_done"


def claim_params(
    store_key: str,
    tool: str,
    key: str,
    fingerprint: str,
    lease: float,
    ttl: float,
    fresh: str,
    taken: str,
) -> dict[str, Any]:
    """Parameters for every claim statement."""
    return {
        "sk": store_key,
        "tool_name": tool,
        "idem_key": key,
        "fp": fingerprint,
        "lease": float(lease),
        "life": float(max(ttl, lease)),
        "fresh": fresh,
        "taken": taken,
    }


def acquired(row: Mapping[Any, Any], taken: str) -> Acquired:
    """The claim that wrote ``row``: attempt 1 after an insert, more after a takeover."""
    return Acquired(row["token"], int(row["attempts"]), takeover=row["token"] == taken)


def settle(row: Mapping[Any, Any] | None, fingerprint: str) -> Claim | None:
    """What a record says to a claim that did not write it (a live record in a newer
    format than this code reads: ``NewerRecordFormat``).

    ``None``: the record is absent, expired, or in progress with its lease run out: a takeover
    may claim it (if another claim wrote first, the takeover matches nothing and the claim
    runs again).
    """
    if row is None or row["expires_at"] <= row["now"]:
        return None
    codec.record_format(row["record_format"])  # a newer format: NewerRecordFormat
    if row["fingerprint"] != fingerprint:
        return Mismatch(fingerprint=fingerprint, existing=row["fingerprint"])
    if row["state"] == S.COMPLETED.value:
        return Cached(codec.load(row["result"]))
    if row["state"] == S.FAILED.value:
        return Dead(codec.load_error(row["error"]))
    if row["lease_until"] > row["now"]:
        return Busy(max(row["lease_until"] - row["now"], MIN_RETRY_AFTER))
    return None  # the lease ran out: the owner is gone
