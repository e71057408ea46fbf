"""The demo's outbox chapter: the agent's decision and its intent commit together.

The agent keeps its own database (``demo-agent.db``): a ``decisions`` table and the outbox
table. A decision and its intent are one transaction; a crash before the commit leaves
neither; a relay that dies after sending and before marking has its batch sent again by the
next relay, and the worker runs the tool once all the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from rich.console import Console
from rich.rule import Rule

from intentq.dedup.base import State
from intentq.demo.checks import Check
from intentq.demo.tools import build_registry
from intentq.outbox import Outbox, Relay
from intentq.outbox.claims import Marks
from intentq.outbox.table import OutboxRow

if TYPE_CHECKING:
    from intentq.demo.stage import Stage
    from intentq.demo.story import Story

SETTLE_TIMEOUT = 20.0

decisions = sa.Table(
    "decisions",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
)


class AgentCrashed(Exception):
    """The agent process dies between its own write and the commit."""


class RelayKilled(BaseException):
    """The relay dies between handing its batch to the broker and marking it sent (what a
    SIGKILL there leaves behind: rows sent, still pending, its lease held)."""


@dataclass
class Chapter:
    """What the chapter did, for its checks."""

    key: str
    crashed_key: str
    first_relay_sent: int = 0
    settled: bool = False


def act_outbox(stage: Stage, story: Story, out: Console) -> Chapter:
    """Chapter 9: commit together, crash before the commit, a relay killed mid-batch."""
    from intentq.demo.story import new_key, wait_for

    out.print(Rule("9. The outbox: the agent's decision and its intent commit together"))
    engine = sa.create_engine(stage.settings.outbox_url or "")
    decisions.create(engine, checkfirst=True)
    outbox = Outbox(stage.settings, build_registry(stage.world, fixed=True))
    chapter = Chapter(new_key("dave-1200"), new_key("erin-1300"))
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(decisions).values(key=chapter.key, decision="dave at 12:00"))
            outbox.add(conn, "book_slot", {"slot": "12:00", "customer": "dave"}, key=chapter.key)
        out.print(f"  committed in one transaction: the decision and its intent ({chapter.key})")
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(decisions).values(key=chapter.crashed_key, decision="erin at 13:00")
                )
                outbox.add(
                    conn, "book_slot", {"slot": "13:00", "customer": "erin"},
                    key=chapter.crashed_key,
                )  # fmt: skip
                raise AgentCrashed
        except AgentCrashed:
            out.print("  the agent crashed before its next commit: neither row exists")
    finally:
        engine.dispose()

    out.print(Rule("10. A relay dies between sending and marking; the next one sends again"))
    chapter.first_relay_sent = _relay_killed_mid_batch(stage)
    out.print(f"  relay-1 handed {chapter.first_relay_sent} intent to the broker, then died")
    with Relay(stage.settings, celery_app=stage.app, name="relay-2") as relay:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while relay.drain().sent == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # relay-1's lease runs out first
    out.print("  relay-2 took over after relay-1's lease ran out and sent the row again")
    item = story.add("booked through the outbox, sent twice", "book_slot", chapter.key, 2)
    chapter.settled = wait_for(stage, [item], stage.dlq.count(), SETTLE_TIMEOUT)
    out.print("  two deliveries under one key: the worker ran the tool once")
    return chapter


def _relay_killed_mid_batch(stage: Stage) -> int:
    relay = Relay(stage.settings, celery_app=stage.app, name="relay-1")
    send = relay.sender.send
    sent: list[int] = []

    def send_then_die(rows: list[OutboxRow]) -> Marks:
        marks = send(rows)
        sent.append(len(marks.sent))
        raise RelayKilled

    relay.sender.send = send_then_die  # type: ignore[method-assign]
    try:
        relay.relay_once()
    except RelayKilled:
        pass
    finally:
        relay.db.close()  # no release: a killed relay leaves its lease to run out
    return sum(sent)


def outbox_checks(stage: Stage, chapter: Chapter) -> list[Check]:
    """The chapter's own checks; the booking's is ``run_checks``'s."""
    engine = sa.create_engine(stage.settings.outbox_url or "")
    try:
        with engine.connect() as conn:
            decided = list(conn.execute(sa.select(decisions.c.key)).scalars())
            rows = conn.execute(
                sa.text(f'SELECT key, state FROM "{stage.settings.outbox_table}"')
            ).all()
    finally:
        engine.dispose()
    runs = stage.world.runs("book_slot", chapter.key)
    handled, _ = stage.counts("book_slot", chapter.key)
    record = stage.store.get("book_slot", chapter.key)
    return [
        Check(
            "decision and intent committed together; a crash left neither",
            decided == [chapter.key] and [tuple(r) for r in rows] == [(chapter.key, "sent")],
            f"decisions {len(decided)}, outbox rows {[tuple(r) for r in rows]}",
        ),
        Check(
            "relay killed mid-batch: sent twice, ran once",
            chapter.first_relay_sent == 1
            and handled == 2
            and len(runs) == 1
            and record is not None
            and record.state is State.COMPLETED,
            f"{handled} deliveries, {len(runs)} run(s)",
        ),
    ]
