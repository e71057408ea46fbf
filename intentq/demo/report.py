"""The demo's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from intentq.dlq.base import DeadLetter
from intentq.dlq.replay import ReplayResult

if TYPE_CHECKING:
    from intentq.demo.checks import Check
    from intentq.demo.stage import Stage
    from intentq.demo.story import Sent
    from intentq.demo.tools import World


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def intents_table(
    stage: Stage, sent: Sequence[Sent], title: str = "What ran, deduplicated, dead-lettered"
) -> Table:
    """Per logical intent: deliveries sent and handled, tool runs, where it ended."""
    table = _table(
        title,
        "intent", "tool", "sent", "handled", "tool ran", "answered from store", "state",
    )  # fmt: skip
    for item in sent:
        if item.tool == "-":
            table.add_row(Text(item.label), "-", "1", "1", "0", "0", "dead-lettered (poison)")
            continue
        runs = stage.world.runs(item.tool, item.key)
        handled, answered = stage.counts(item.tool, item.key)
        succeeded = sum(1 for _, outcome, _ in runs if outcome == "ok")
        record = stage.store.get(item.tool, item.key)
        state = str(record.state) if record is not None else "dead-lettered (never claimed)"
        if record is not None and record.attempts > 1:
            state += f" after {record.attempts} attempts"
        table.add_row(
            Text(item.label), item.tool, str(item.deliveries), str(handled), str(len(runs)),
            str(max(answered - succeeded, 0)), state,
        )  # fmt: skip
    return table


def dead_letter_table(letters: Sequence[DeadLetter]) -> Table:
    table = _table("Dead letters", "id", "tool", "reason", "error")
    for letter in letters:
        error = f"{letter.error_type}: {letter.error_message or ''}"
        table.add_row(letter.id[-12:], letter.tool or "-", str(letter.reason), Text(error[:90]))
    return table


def replay_table(title: str, results: Sequence[ReplayResult]) -> Table:
    table = _table(title, "letter", "tool", "action", "why")
    for result in results:
        table.add_row(
            result.letter_id[-12:], result.tool or "-", str(result.action), Text(result.detail)
        )
    return table


def side_effects_table(world: World) -> Table:
    """Every row the tools wrote: no table has a unique constraint, doubles would show."""
    table = _table("Side effects (no unique constraints)", "table", "row", "count")
    for slot, customer, count in world.query(
        "SELECT slot, customer, COUNT(*) FROM bookings GROUP BY slot, customer ORDER BY slot"
    ):
        table.add_row("bookings", f"{slot} {customer}", str(count))
    for name in ("invoices", "emails", "notifications"):
        (count,) = world.query(f"SELECT COUNT(*) FROM {name}")[0]
        table.add_row(name, "all rows", str(count))
    return table


def checks_table(checks: Sequence[Check]) -> Table:
    table = _table("Checks", "check", "result", "detail")
    for check in checks:
        mark = Text("pass", style="green") if check.ok else Text("FAIL", style="bold red")
        table.add_row(Text(check.name), mark, Text(check.detail))
    return table
