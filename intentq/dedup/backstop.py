"""The last line of defence: a unique column in the tool's own table.

The store makes a side effect run once per key. For writes to a database the tool owns, a
unique constraint on a column holding ``ctx.key`` makes a second write impossible even if
the store was wiped or bypassed. Store the key, not ``ctx.intent_id``: an agent that
retries enqueues a new intent id under the same key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# PostgreSQL's unique_violation; SQLite's extended result codes for the same.
PG_UNIQUE_VIOLATION = "23505"
SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def is_unique_violation(exc: IntegrityError) -> bool:
    """True if ``exc`` is a duplicate on a unique column, not some other constraint."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == PG_UNIQUE_VIOLATION:
        return True
    if getattr(orig, "sqlite_errorname", None) in SQLITE_UNIQUE:
        return True
    return "UNIQUE constraint failed" in str(orig)


def insert_once(session: Session | Connection, statement: Executable) -> bool:
    """Run ``statement`` (an INSERT) in a SAVEPOINT; ``False`` if its unique key already exists.

    The surrounding transaction stays usable either way; any other integrity error is raised.
    """
    return _once(session, lambda: session.execute(statement))


def add_once(session: Session, instance: Any) -> bool:
    """ORM flavour of ``insert_once``: add and flush ``instance`` in a SAVEPOINT. On a
    duplicate the instance is left out of the session, which stays usable."""

    def write() -> None:
        session.add(instance)
        session.flush()

    return _once(session, write)


def _once(session: Session | Connection, write: Callable[[], object]) -> bool:
    try:
        with session.begin_nested():
            write()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        return False
    return True
