"""The demo's story: an agent, duplicates from everywhere, poison, a fix and a replay.

Everything runs in one process on the embedded default: SQLite store, SQLite DLQ, and a
Celery worker (threads pool) in a thread, fed through kombu's SQLite broker.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from intentq.dedup.base import State
from intentq.demo.checks import Check, run_checks
from intentq.demo.outbox import act_outbox, outbox_checks
from intentq.demo.report import (
    checks_table,
    dead_letter_table,
    intents_table,
    replay_table,
    side_effects_table,
)
from intentq.demo.stage import Stage
from intentq.dlq.base import LetterFilter
from intentq.dlq.replay import ReplayResult, replay
from intentq.ops.awaiting import Status, await_result

SETTLE_TIMEOUT = 40.0
AWAIT_TIMEOUT = 20.0
# Truncated JSON: what a crashed producer or a broken proxy leaves on a queue.
MALFORMED = b'{"v": 1, "tool": "book_slot", "args": {"slot": "12:00", "cust'


@dataclass
class Sent:
    """One logical intent of the story and how many times it went out."""

    label: str
    tool: str
    key: str
    deliveries: int = 1
    expect: str = "completed"  # or "dead-lettered", until the replay
    # Deliveries a task sees: an intent for an unknown tool is dead-lettered before any task.
    reach_task: int | None = None

    @property
    def to_handle(self) -> int:
        return self.deliveries if self.reach_task is None else self.reach_task


@dataclass
class Story:
    """What the agent sent, in order."""

    sent: list[Sent] = field(default_factory=list)

    def add(self, label: str, tool: str, key: str, deliveries: int = 1) -> Sent:
        item = Sent(label, tool, key, deliveries)
        self.sent.append(item)
        return item


def new_key(name: str) -> str:
    """A readable idempotency key, unique per run (the demo may reuse a folder)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_for(stage: Stage, sent: list[Sent], letters: int, timeout: float) -> bool:
    """Until every delivery was handled, every intent completed, and the DLQ holds ``letters``."""
    deadline = time.monotonic() + timeout
    live = [s for s in sent if s.tool != "-" and s.expect.startswith("completed")]
    while time.monotonic() < deadline:
        handled = all(stage.counts(s.tool, s.key)[0] >= s.to_handle for s in live)
        records = [stage.store.get(s.tool, s.key) for s in live]
        done = all(r is not None and r.state is State.COMPLETED for r in records)
        if handled and done and stage.dlq.count() == letters:
            return True
        time.sleep(0.1)
    return False


def act_one(stage: Stage, story: Story, out: Console) -> bool:
    """The agent at work: duplicates of every kind, a slow tool, a flaky one, poison."""
    agent = stage.checked
    out.print(Rule("1. An agent books a slot; the response is lost; it retries"))
    k1 = new_key("alice-0900")
    args1 = {"slot": "09:00", "customer": "alice"}
    agent.enqueue("book_slot", args1, key=k1)
    first = await_result(stage.store, "book_slot", k1, AWAIT_TIMEOUT)
    out.print(f"  booked: {first.result}  (status {first.status})")
    # The agent never saw that answer: it sends the same call again, same key, new intent id.
    agent.enqueue("book_slot", args1, key=k1)
    again = await_result(stage.store, "book_slot", k1, AWAIT_TIMEOUT)
    out.print(f"  sent again under key {k1}: the same answer, {again.result}")
    story.add("booking, then a retry after a lost response", "book_slot", k1, deliveries=2)

    out.print(Rule("2. An impatient agent sends twice; the broker delivers once more"))
    k2 = new_key("bob-1000")
    intent2 = agent.enqueue("book_slot", {"slot": "10:00", "customer": "bob"}, key=k2)
    agent.enqueue("book_slot", {"slot": "10:00", "customer": "bob"}, key=k2)
    stage.send(intent2)  # at-least-once delivery: the very same message again
    out.print(f"  three deliveries under key {k2}: two intents, one of them delivered twice")
    story.add("booking sent twice + redelivered", "book_slot", k2, deliveries=3)

    out.print(Rule("3. A slow tool outlives its lease; the heartbeat keeps it"))
    k3 = new_key("invoice-alice")
    agent.enqueue("generate_invoice", {"customer": "alice"}, key=k3)
    started = _wait_state(stage, "generate_invoice", k3, State.IN_PROGRESS, AWAIT_TIMEOUT)
    agent.enqueue("generate_invoice", {"customer": "alice"}, key=k3)  # arrives mid-run
    story.add("slow invoice, duplicate mid-run", "generate_invoice", k3, deliveries=2)
    out.print(f"  invoice running: {started}; a duplicate arrived while it ran")

    out.print(Rule("4. A flaky tool fails once, transiently, and succeeds on retry"))
    k4 = new_key("confirm-bob")
    agent.enqueue("send_confirmation", {"customer": "bob"}, key=k4)
    story.add("confirmation e-mail (fails once)", "send_confirmation", k4)
    out.print(
        "  the mail server is busy on the first attempt: TransientError, retried with backoff"
    )

    out.print(Rule("5. Poison: malformed, unknown tool, bad arguments"))
    old_agent = stage.plain  # sends without checking: what reaches the queue from elsewhere
    old_agent.send_raw(MALFORMED)
    k5 = new_key("notify-staff")
    old_agent.enqueue("notify_staff", {"text": "alice booked 09:00"}, key=k5)
    k6 = new_key("carol-1100")
    old_agent.enqueue("book_slot", {"time": "11:00", "customer": "carol"}, key=k6)
    story.add("truncated JSON", "-", "-").expect = "dead-lettered"
    unknown = story.add("tool not deployed yet", "notify_staff", k5)
    unknown.expect, unknown.reach_task = "dead-lettered", 0
    story.add("old agent's argument names", "book_slot", k6).expect = "dead-lettered"
    out.print("  truncated JSON; a tool no worker has yet; 'time' where the schema wants 'slot'")

    settled = wait_for(stage, story.sent, letters=3, timeout=SETTLE_TIMEOUT)
    out.print()
    out.print(intents_table(stage, story.sent))
    out.print(dead_letter_table(list(stage.dlq.iter())))
    return settled


def act_two(stage: Stage, story: Story, out: Console) -> bool:
    """The fix, a dry run, the replay, and the one letter that cannot be replayed."""
    out.print(Rule("6. The fix: book_slot accepts the old name, notify_staff is deployed"))
    stage.deploy(fixed=True)
    out.print("  the worker restarted with the new tools (a deploy)")

    out.print(Rule("7. Replay the dead letters: a dry run first, then for real"))
    plan = replay(stage.dlq, stage.store, list(stage.dlq.iter()), stage.resend, dry_run=True)
    out.print(replay_table("dry run: nothing sent", plan.results))

    def progress(result: ReplayResult) -> None:
        out.print(f"  {result.action:>14}  {result.tool or '-'}  {result.detail}")

    done = replay(
        stage.dlq, stage.store, list(stage.dlq.iter()), stage.resend, rate=20, on_result=progress
    )
    out.print(
        f"  replayed {done.replayed}, skipped {done.skipped}, refused {done.refused}, "
        f"failed {done.failed}"
    )
    refused = [r.letter_id for r in done.results if r.action == "refused"]
    for item in story.sent:
        if item.expect == "dead-lettered" and item.tool != "-":
            item.expect = "completed (replayed)"
            item.deliveries += 1
            item.reach_task = None if item.reach_task is None else item.reach_task + 1
    settled = wait_for(stage, story.sent, letters=len(refused), timeout=SETTLE_TIMEOUT)

    out.print(Rule("8. What cannot be replayed is purged, after a look"))
    for letter in stage.dlq.list(LetterFilter(ids=tuple(refused))).letters:
        out.print(f"  {letter.id}: {letter.error_type}: {letter.error_message}")
        stage.dlq.delete(letter.id)
    out.print(f"  purged {len(refused)} letter(s); the DLQ now holds {stage.dlq.count()}")
    return settled


def _wait_state(stage: Stage, tool: str, key: str, state: State, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = stage.store.get(tool, key)
        if record is not None and record.state is state:
            return True
        time.sleep(0.05)
    return False


def run_demo(directory: Path, out: Console) -> list[Check]:
    """Play the story in ``directory``; returns the checks (all must pass)."""
    started = time.monotonic()
    stage = Stage.open(directory)
    story = Story()
    try:
        out.print(f"[bold]intentq demo[/bold] in {directory}  (store, DLQ and broker: SQLite)")
        if stage.replaced:
            out.print(
                f"  started from empty files: removed an earlier run's {', '.join(stage.replaced)}"
                " (nothing else in the folder is touched)"
            )
        stage.deploy(fixed=False)
        settled_one = act_one(stage, story, out)
        settled_two = act_two(stage, story, out)
        chapter = act_outbox(stage, story, out)
        out.print(Rule("Final counts"))
        out.print(intents_table(stage, story.sent, "After the fix and the replay"))
        out.print(side_effects_table(stage.world))
        checks = run_checks(stage, story.sent) + outbox_checks(stage, chapter)
        settled = settled_one and settled_two and chapter.settled
        checks.insert(0, Check("every intent settled in time", settled, ""))
        out.print(checks_table(checks))
        out.print(f"took {time.monotonic() - started:.1f}s")
        return checks
    finally:
        stage.close()


__all__ = ["Sent", "Status", "Story", "run_demo"]
