"""The demo's checks: every side effect exactly once, nothing lost, the DLQ drained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intentq.dedup.base import State

if TYPE_CHECKING:
    from intentq.demo.stage import Stage
    from intentq.demo.story import Sent

# Dave's comes through the outbox; Erin's never does (the agent crashed before its commit).
EXPECTED_BOOKINGS = {("09:00", "alice"), ("10:00", "bob"), ("11:00", "carol"), ("12:00", "dave")}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(stage: Stage, sent: Sequence[Sent]) -> list[Check]:
    """What must hold at the end of the story."""
    world = stage.world
    rows = world.query("SELECT slot, customer, COUNT(*) FROM bookings GROUP BY slot, customer")
    booked = {(slot, customer): int(count) for slot, customer, count in rows}
    checks = [
        Check(
            "every booking exactly once",
            set(booked) == EXPECTED_BOOKINGS and all(n == 1 for n in booked.values()),
            ", ".join(f"{s} {c} x{n}" for (s, c), n in sorted(booked.items())),
        )
    ]
    for table, tool in (
        ("invoices", "generate_invoice"),
        ("emails", "send_confirmation"),
        ("notifications", "notify_staff"),
    ):
        (count,) = world.query(f"SELECT COUNT(*) FROM {table}")[0]
        checks.append(Check(f"{tool}: one {table[:-1]}", count == 1, f"{count} row(s)"))
    slow = [s for s in sent if s.tool == "generate_invoice"]
    slow_runs = world.runs("generate_invoice", slow[0].key) if slow else []
    checks.append(
        Check(
            "slow tool ran once, its lease extended",
            len(slow_runs) == 1 and "pushed" in slow_runs[0][2],
            slow_runs[0][2] if slow_runs else "never ran",
        )
    )
    flaky = [s for s in sent if s.tool == "send_confirmation"]
    flaky_runs = world.runs("send_confirmation", flaky[0].key) if flaky else []
    checks.append(
        Check(
            "transient failure retried, then succeeded",
            [outcome for _, outcome, _ in flaky_runs] == ["TransientError", "ok"],
            " -> ".join(f"attempt {a}: {o}" for a, o, _ in flaky_runs),
        )
    )
    pending = []
    for item in sent:
        if item.tool == "-":
            continue
        record = stage.store.get(item.tool, item.key)
        if record is None or record.state is not State.COMPLETED:
            pending.append(f"{item.tool}:{item.key}")
    checks.append(
        Check("every intent completed", not pending, ", ".join(pending) or "all completed")
    )
    left = stage.dlq.count()
    checks.append(Check("dead-letter queue drained", left == 0, f"{left} letter(s) left"))
    return checks
