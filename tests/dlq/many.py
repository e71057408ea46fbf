"""Many letters at once for the paging, stats, index and resume tests: SQL stores are filled
with multi-row INSERTs (a put per letter would take most of a test's time), others by put."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from intentq.dlq import DeadLetter, DeadLetterStore, Reason, open_dlq
from intentq.dlq.sql import SqlDeadLetterStore
from intentq.intent import Intent, new_intent_id

TOOLS = ("book_slot", "send_email", "charge_card", "refund", None)
NOW = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def make_letters(
    n: int, seed: int = 1, now: datetime = NOW, spread: timedelta = timedelta(days=40)
) -> list[DeadLetter]:
    """``n`` letters of mixed tools (one in five without one), reasons and ages up to
    ``spread``; one in ten shares its ``dead_at`` with the letter before (ties in the order)."""
    rng = random.Random(seed)
    out: list[DeadLetter] = []
    dead_at = now
    for i in range(n):
        if i % 10 or not out:
            dead_at = now - spread * rng.random()
        tool = TOOLS[rng.randrange(len(TOOLS))]
        body = Intent.create(tool or "gone", {"i": i}, key=f"k-{seed}-{i}").to_json()
        letter = DeadLetter(
            id=new_intent_id(), body=body, reason=rng.choice(list(Reason)), tool=tool,
            key=f"k-{seed}-{i}", error_type="ValueError", error_message="no",
            attempts=1, first_seen=dead_at, dead_at=dead_at,
        )  # fmt: skip
        out.append(letter)
    return out


def put_all(dlq: DeadLetterStore, letters: list[DeadLetter], batch: int = 2000) -> None:
    """Store ``letters`` as they are (ids kept): in batches of INSERTs on SQL, else one by one."""
    if not isinstance(dlq, SqlDeadLetterStore):
        for letter in letters:
            dlq.put(letter)
        return
    rows = [_row(letter) for letter in letters]
    with dlq.engine.begin() as conn:
        for start in range(0, len(rows), batch):
            conn.execute(sa.insert(dlq.table), rows[start : start + batch])


def _row(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id, "body": letter.body, "reason": str(letter.reason), "tool": letter.tool,
        "key": letter.key, "intent_id": letter.intent_id, "error_type": letter.error_type,
        "error_message": letter.error_message, "traceback": None, "attempts": letter.attempts,
        "source_transport": None, "source_queue": None, "first_seen": letter.first_seen,
        "dead_at": letter.dead_at, "replay_count": letter.replay_count,
        "last_replayed_at": letter.last_replayed_at,
    }  # fmt: skip


def sql_url(backend: str, tmp_path: Path, pg_url: str | None) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'dlq.db'}"
    assert pg_url is not None
    return pg_url


def opened(url: str, table: str) -> Iterator[SqlDeadLetterStore]:
    """A store on a fresh table, dropped afterwards."""
    with closing(open_dlq(url, table_name=table)) as store:
        assert isinstance(store, SqlDeadLetterStore)
        store.create_schema()
        try:
            yield store
        finally:
            store.drop_schema()
