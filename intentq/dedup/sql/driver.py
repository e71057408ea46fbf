"""The hot path: the store's statements compiled once and run on the driver directly.

SQLAlchemy builds and compiles each statement once and still owns the pool, transactions
and error classes; a call then costs one execute on the driver's connection instead of a
pass through SQLAlchemy's execution machinery (which costs more than the statement itself).
Connections come from a ``Keeper``, which keeps a few checked out between calls.

PostgreSQL (``Driver``, psycopg 3): every call is one autocommit statement. A batch of claims
is one statement over the entries, sent as one JSON parameter (``Statements.claim_many``):
new keys inserted in key order, so workers claiming overlapping batches lock rows in the same
order and cannot deadlock, the other keys read; an entry that can take a record over, or that
lost a race (the same key twice in the batch: the second), claims again on its own. One
statement costs the client and the server far less than a pipeline of one claim per entry
(psycopg's Python per statement, the server's per-statement overhead). Batch completions are
one UPDATE over the entries (``Statements.complete_many``), also in key order; a key given
again goes in a second one.

SQLite (``SqliteDriver``, the stdlib ``sqlite3``) runs in autocommit too: a statement needs
no BEGIN, as a writing statement takes the write lock when it starts (waiting out
``busy_timeout``), exactly like ``BEGIN IMMEDIATE``. A claim is the same sequence as on
PostgreSQL in separate statements: insert, else read, and take over only if the record
allows. A batch of claims or of completions runs in one ``BEGIN IMMEDIATE`` transaction, one
commit for all its writes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import ClauseElement

from intentq.dedup.base import Acquired, Claim, ClaimRequest
from intentq.dedup.sql.engine import Keeper
from intentq.dedup.sql.statements import claim_params, settle

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

    from intentq.dedup.sql.store import SqlDedupStore


# A batch's entries go to PostgreSQL as one JSON parameter (``Statements._entries``).
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Compiled:
    """One statement's SQL text and the parameters bound at compile time, if any."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.text = compiled.string
        # Bytes: psycopg would encode a str on every call, and hash the copy to find its
        # cached parse and prepared statement.
        self.sql = compiled.string.encode()
        # Positional drivers (sqlite3's qmark): the parameter names in placeholder order.
        self.order = tuple(getattr(compiled, "positiontup", None) or ())
        # SQLAlchemy lists every parameter, None where the call supplies it.
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}

    def bind(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**self.defaults, **params} if self.defaults else params

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """Positional parameters, for a statement compiled by a positional dialect."""
        bound = self.bind(params)
        return tuple([bound[name] for name in self.order])


class Driver:
    """The PostgreSQL store's calls, each one statement on a psycopg connection."""

    def __init__(self, store: SqlDedupStore) -> None:
        import psycopg

        statements, dialect = store.statements, store.engine.dialect
        assert statements.claim_first is not None
        self.claim_sql = Compiled(statements.claim_first, dialect)
        # Known once here: reading column names from every cursor costs more than the rows.
        self.claim_columns = tuple(c.name for c in statements.claim_first.selected_columns)
        self._token_at = self.claim_columns.index("token")
        self._attempts_at = self.claim_columns.index("attempts")
        self.takeover = Compiled(statements.claim_takeover, dialect)
        assert statements.claim_many is not None
        self.claim_many_sql = Compiled(statements.claim_many, dialect)
        many_columns = tuple(c.name for c in statements.claim_many.selected_columns)
        self._many_key_at = many_columns.index("store_key")
        # A batch row without its store_key reads like a claim statement's row.
        assert many_columns[: self._many_key_at] + many_columns[self._many_key_at + 1 :] == (
            self.claim_columns
        )
        self.finish = Compiled(statements.finish, dialect)
        assert statements.complete_many is not None
        self.finish_many = Compiled(statements.complete_many, dialect)
        self.release = Compiled(statements.release, dialect)
        self.extend = Compiled(statements.extend, dialect)
        self.batches = True  # claim_many is one statement
        self._store = store
        # Connections of a pool shared with transactions are switched to autocommit and back.
        own = store.autocommit_pool
        self.keeper = Keeper(
            store.autocommit_engine,
            psycopg.Error,
            keep=own,
            autocommit=not own,
            pools=store.pools,
        )

    def close(self) -> None:
        self.keeper.close()

    def execute(self, what: str, statement: Compiled, params: Mapping[str, Any]) -> list[Any]:
        """Run an owner-only UPDATE; the rows it returned, or one empty row per row changed."""
        with self.keeper.using(what) as held:
            cursor = held.cursor
            cursor.execute(statement.sql, statement.bind(params))
            if cursor.description is not None:
                return list(cursor.fetchall())
            return [()] * max(cursor.rowcount, 0)

    def claim(self, params: dict[str, Any]) -> Claim | None:
        """Insert or read, then take over if the record allows; ``None``: ask again.

        A new key, or one that another claim holds or finished, is one statement.
        """
        with self.keeper.using("claim") as held:
            cursor = held.cursor
            cursor.execute(self.claim_sql.sql, params)
            outcome = self._answer(cursor.fetchone(), params)
            if outcome is TAKEOVER:
                cursor.execute(self.takeover.sql, params)
                took = cursor.fetchone()  # (token, attempts), or None: another claim was first
                outcome = None if took is None else _took(took, params)
        assert not isinstance(outcome, _Takeover)
        return outcome

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims in request order, in one statement; ``None`` where a claim must ask again
        alone (a concurrent claim won a race, or the record can be taken over)."""
        params = batch_params(self._store, requests)
        with self.keeper.using("claim_many") as held:
            cursor = held.cursor
            batch = [
                {
                    "n": n, "sk": p["sk"], "tool": p["tool_name"], "key": p["idem_key"],
                    "fp": p["fp"], "fresh": p["fresh"], "lease": p["lease"], "life": p["life"],
                }
                for n, p in enumerate(params)
            ]  # fmt: skip
            cursor.execute(self.claim_many_sql.sql, {"batch": _JSON.encode(batch)})
            rows = cursor.fetchall()
        at = self._many_key_at
        inserted: dict[str, Any] = {}
        current: dict[str, Any] = {}
        for row in rows:
            (inserted if row[0] == "ins" else current)[row[at]] = row[:at] + row[at + 1 :]
        answers: list[Claim | None] = []
        for p in params:
            row = inserted.get(p["sk"])
            if row is not None:
                # The same key twice: the entry whose token went in has it, the other asks
                # again (and finds it busy).
                token = row[self._token_at]
                answers.append(Acquired(token, 1) if token == p["fresh"] else None)
                continue
            answer = self._answer(current.get(p["sk"]), p)
            answers.append(None if isinstance(answer, _Takeover) else answer)
        return answers

    def complete_many(self, entries: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Completions (each the finishing UPDATE's parameters) in one statement, one more
        for each repeat of a key; ``True`` where the entry's token owned its key."""
        done = [False] * len(entries)
        # Key order, as for claims: overlapping batches lock rows in the same order.
        pending = sorted(range(len(entries)), key=lambda i: entries[i]["sk"])
        sql = self.finish_many.sql
        with self.keeper.using("complete_many") as held:
            cursor = held.cursor
            while pending:
                now, pending = _first_of_each_key(entries, pending)
                batch = [
                    {
                        "sk": entries[i]["sk"], "owner": entries[i]["owner"],
                        "res": entries[i]["new_result"], "ttl": entries[i]["ttl"],
                    }
                    for i in now
                ]  # fmt: skip
                cursor.execute(sql, {"batch": _JSON.encode(batch)})
                recorded = {row[0] for row in cursor.fetchall()}
                for i in now:
                    done[i] = entries[i]["sk"] in recorded
        return done

    def _answer(self, row: Any, params: Mapping[str, Any]) -> Claim | _Takeover | None:
        """What the claim statement's row means."""
        if row is None:
            return None  # a concurrent claim inserted the key after this one's snapshot
        if row[0] == "ins":  # a new record: its first attempt, with the fresh token
            return Acquired(row[self._token_at], int(row[self._attempts_at]))
        outcome = settle(dict(zip(self.claim_columns, row, strict=True)), params["fp"])
        return TAKEOVER if outcome is None else outcome


class SqliteDriver:
    """The SQLite store's calls on ``sqlite3`` connections."""

    batches = True  # claim_many runs in one transaction

    def __init__(self, store: SqlDedupStore, *, keep: bool) -> None:
        import sqlite3

        statements, dialect = store.statements, store.engine.dialect
        self.insert = Compiled(statements.claim_insert, dialect)
        self.takeover = Compiled(statements.claim_takeover, dialect)
        self.current = Compiled(statements.current, dialect)
        self.current_columns = tuple(c.name for c in statements.current.selected_columns)
        self.finish = Compiled(statements.finish, dialect)
        self.release = Compiled(statements.release, dialect)
        self.extend = Compiled(statements.extend, dialect)
        self._store = store
        self.keeper = Keeper(store.engine, sqlite3.Error, keep=keep, pools=store.pools)

    def close(self) -> None:
        self.keeper.close()

    def execute(self, what: str, statement: Compiled, params: Mapping[str, Any]) -> list[Any]:
        """Run an owner-only UPDATE; the rows it returned, or one empty row per row changed."""
        with self.keeper.using(what) as held:
            cursor = held.cursor
            cursor.execute(statement.text, statement.args(params))
            # All rows read: the statement ends, and with it its implicit transaction.
            return cursor.fetchall() if cursor.description else [()] * max(cursor.rowcount, 0)

    def claim(self, params: dict[str, Any]) -> Claim | None:
        """One claim, each statement in autocommit. ``None``: ask again."""
        with self.keeper.using("claim") as held:
            return self._claim(held.cursor, params)

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim | None]:
        """Claims in request order, in one transaction; ``None`` where one must ask again."""
        batch = batch_params(self._store, requests)
        with self.keeper.using("claim_many") as held:
            cursor = held.cursor
            cursor.execute("BEGIN IMMEDIATE")  # one commit (one fsync) for the batch
            answers = [self._claim(cursor, params) for params in batch]
            held.connection.commit()
        return answers

    def complete_many(self, entries: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Completions in order, in one transaction; ``True`` where the token owned the key."""
        finish = self.finish
        with self.keeper.using("complete_many") as held:
            cursor = held.cursor
            cursor.execute("BEGIN IMMEDIATE")  # one commit (one fsync) for the batch
            done = []
            for params in entries:
                cursor.execute(finish.text, finish.args(params))
                done.append(cursor.rowcount > 0)
            held.connection.commit()
        return done

    def _claim(self, cursor: Any, params: Mapping[str, Any]) -> Claim | None:
        """Insert; else read the record, and take it over if it allows.

        As on PostgreSQL, the takeover's WHERE checks the record again: if another claim
        changed it since the read, nothing matches and the claim runs again.
        """
        cursor.execute(self.insert.text, self.insert.args(params))
        rows = cursor.fetchall()  # read to the end: the statement (and autocommit) ends
        if rows:
            return Acquired(rows[0][0], int(rows[0][1]))
        cursor.execute(self.current.text, self.current.args(params))
        rows = cursor.fetchall()
        row = dict(zip(self.current_columns, rows[0], strict=True)) if rows else None
        outcome = settle(row, params["fp"])
        if outcome is None and row is not None:
            cursor.execute(self.takeover.text, self.takeover.args(params))
            took = cursor.fetchall()
            return _took(took[0], params) if took else None
        return outcome


class _Takeover:
    """The record read may be taken over: the claim's second statement."""


TAKEOVER = _Takeover()


def _took(row: Sequence[Any], params: Mapping[str, Any]) -> Acquired:
    """The takeover's ``(token, attempts)``: ``taken`` is the token of a previous owner's."""
    token, attempts = row
    return Acquired(token, int(attempts), takeover=token == params["taken"])


def _first_of_each_key(
    entries: Sequence[Mapping[str, Any]], pending: Sequence[int]
) -> tuple[list[int], list[int]]:
    """``pending`` split into each key's first entry and the entries that repeat a key."""
    seen: set[str] = set()
    first: list[int] = []
    again: list[int] = []
    for i in pending:
        key = entries[i]["sk"]
        (again if key in seen else first).append(i)
        seen.add(key)
    return first, again


def batch_params(store: SqlDedupStore, requests: Sequence[ClaimRequest]) -> list[dict[str, Any]]:
    """Each entry's claim parameters, with tokens of its own."""
    return [
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
