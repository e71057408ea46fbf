"""Schema versions: the revision a database is at, and whether this code can use it.

A revision's id states two numbers, ``NNNN_compat_MMMM``: revision NNNN, which code written
for revision MMMM or later can still use. The id is what the version table holds, so code
that has never seen a newer revision still reads, from the database alone, whether it may
run on it (a nullable column added is compatible; a column renamed is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from intentq.errors import (
    DedupError,
    DLQError,
    DLQUnavailable,
    IntentqError,
    OutboxError,
    OutboxUnavailable,
    SchemaMismatch,
    SchemaTooNew,
    StoreUnavailable,
)

REVISION_RE = re.compile(r"(\d{4})_compat_(\d{4})\Z")
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, order=True)
class Version:
    """A revision as its id states it: its number, and the oldest code revision it serves."""

    number: int
    compat: int

    @classmethod
    def parse(cls, revision: str) -> Version | None:
        """The version an id states; ``None`` for an id not in this form."""
        match = REVISION_RE.match(revision)
        return cls(int(match[1]), int(match[2])) if match else None

    @property
    def revision(self) -> str:
        return f"{self.number:04d}_compat_{self.compat:04d}"

    def __str__(self) -> str:
        return str(self.number)


@dataclass(frozen=True)
class Family:
    """Tables that migrate together: one Alembic script directory and one version table each.

    ``needs`` is the revision this code reads and writes: the head of its script directory.
    """

    name: str  # the script directory under intentq/migrations/
    what: str  # how messages name the table
    needs: int
    unavailable: type[IntentqError]  # the database cannot be reached
    failed: type[IntentqError]  # any other database error

    @property
    def script_location(self) -> str:
        return str(HERE / self.name)

    def version_table(self, table: str) -> str:
        """The version table of ``table``: one per table, so two stores (or two prefixes, or
        the application's own Alembic history) in one database never share one."""
        return f"{table}_version"


DEDUP = Family("dedup", "dedup table", 2, StoreUnavailable, DedupError)
DLQ = Family("dlq", "dead-letter table", 2, DLQUnavailable, DLQError)
OUTBOX = Family("outbox", "outbox table", 1, OutboxUnavailable, OutboxError)


def problem(what: str, found: Version | None, needed: int) -> SchemaMismatch | None:
    """Why code written for revision ``needed`` cannot run on ``found``; ``None`` if it can."""
    if found is None or found.number < needed:
        return SchemaMismatch(what, None if found is None else str(found), str(needed))
    if found.number > needed and found.compat > needed:
        return SchemaTooNew(what, str(found), str(found.compat), str(needed))
    return None
