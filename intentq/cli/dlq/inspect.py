"""``intentq dlq list | show | stats``: look at dead letters without changing them."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Annotated

import typer
from rich.syntax import Syntax

from intentq.cli.common import JsonFlag, load_settings
from intentq.cli.dlq.purge import PURGE_EPILOG, purge
from intentq.cli.dlq.replay import REPLAY_EPILOG, replay
from intentq.cli.group import typer_app
from intentq.cli.output import console, examples, print_json, show_fields, table, when
from intentq.cli.selectors import (
    ErrorTypeOpt,
    ReasonOpt,
    SinceOpt,
    ToolOpt,
    UntilOpt,
    find_letters,
    letter_filter,
)

dlq_app = typer_app(
    help="Inspect, replay and purge dead letters.",
    epilog="Example:  intentq dlq list --reason schema --since 2h",
)

DEFAULT_LIMIT = 50


@dlq_app.command(
    "list",
    epilog=examples(
        "intentq dlq list --tool book_slot --since 1d --json",
        "intentq dlq list --reason exhausted --cursor 1764662400123456:01a2265c-...   (next page)",
    ),
)
def list_letters(
    tool: ToolOpt = None,
    reason: ReasonOpt = None,
    error_type: ErrorTypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N letters.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Start after this page: the cursor the previous one gave."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters, oldest first, a page at a time."""
    from intentq.connections import opened_dlq
    from intentq.ops.serialize import letter_summary

    f = letter_filter(tool, reason, error_type, since, until)
    with opened_dlq(load_settings()) as dlq:
        page = dlq.list(f, limit=limit, cursor=cursor)
        alone = page.cursor is None and cursor is None
        total = len(page.letters) if alone else dlq.count(f)
    letters = [letter_summary(letter) for letter in page.letters]
    if as_json:
        print_json(
            {"letters": letters, "shown": len(letters), "total": total, "cursor": page.cursor}
        )
        return
    rows = [
        (
            x.id, when(x.dead_at), x.tool, x.key, x.reason,
            f"{x.error_type}: {(x.error_message or '')[:80]}", x.attempts, x.replay_count,
        )
        for x in page.letters
    ]  # fmt: skip
    out = console()
    columns = ("id", "dead at", "tool", "key", "reason", "error", "attempts", "replays")
    out.print(table(None, columns, rows))
    more = f" (--limit {limit}; {total} match)" if total > len(rows) else ""
    out.print(f"{len(rows)} letter(s){more}")
    if page.cursor is not None:
        out.print(f"next page: --cursor {page.cursor}", markup=False)


@dlq_app.command(
    "show",
    epilog=examples(
        "intentq dlq show 01a2265c-16c3-7000-b9f7-36db9bee8ffe --json",
        "intentq dlq show 36db9bee8ffe   (the last 12 characters, as replay progress prints)",
    ),
)
def show(
    letter_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The letter's id, or its last 8 or more characters if unique."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Show one dead letter: its body, error, traceback and history."""
    from intentq.connections import opened_dlq
    from intentq.ops.serialize import letter_detail

    with opened_dlq(load_settings()) as dlq:
        letter = find_letters(dlq, [letter_id])[0]
    detail = letter_detail(letter)
    if as_json:
        print_json(detail)
        return
    out = console()
    traceback = detail.pop("traceback", None)
    body = {k: detail.pop(k) for k in ("body", "body_text", "body_base64") if k in detail}
    out.print(show_fields(f"dead letter {letter.id}", detail))
    for name, value in body.items():
        text = json.dumps(value, indent=2) if name == "body" else str(value)
        out.print(f"[bold]{name}[/bold]")
        out.print(Syntax(text, "json" if name == "body" else "text", word_wrap=True))
    if traceback:
        out.print("[bold]traceback[/bold]")
        out.print(Syntax(traceback, "pytb", word_wrap=True))


@dlq_app.command("stats", epilog="Example:  intentq dlq stats --since 7d --json")
def stats(
    tool: ToolOpt = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Count dead letters by tool, by reason and by age."""
    from intentq.connections import opened_dlq
    from intentq.dlq.base import AGE_LABELS
    from intentq.ops.stats import letter_stats

    f = letter_filter(tool, reason, since=since)
    with opened_dlq(load_settings()) as dlq:
        counts = letter_stats(dlq, f)
    if as_json:
        print_json(
            {
                "total": counts.total,
                "by_tool": dict(counts.by_tool.most_common()),
                "by_reason": dict(counts.by_reason.most_common()),
                "by_age": {label: counts.by_age[label] for label in AGE_LABELS},
                "by_tool_reason": [
                    {"tool": t, "reason": r, "count": n}
                    for (t, r), n in counts.by_tool_reason.most_common()
                ],
                "oldest": counts.oldest,
                "newest": counts.newest,
            }
        )
        return
    out = console()
    if not counts.total:
        out.print("no dead letters")
        return
    rows = [(t, r, n) for (t, r), n in counts.by_tool_reason.most_common()]
    out.print(table("by tool and reason", ("tool", "reason", "count"), rows))
    by_reason = ", ".join(f"{r} {n}" for r, n in counts.by_reason.most_common()) or "none"
    out.print(f"total {counts.total}; by reason: {by_reason}")
    spans = ["within 1h", *(f"{a} to {b}" for a, b in pairwise(AGE_LABELS[:-1])), "older"]
    pairs = zip(spans, AGE_LABELS, strict=True)
    ages = ", ".join(f"{span} {counts.by_age[label]}" for span, label in pairs)
    out.print(f"by age: {ages}")
    out.print(f"oldest {when(counts.oldest)}, newest {when(counts.newest)}")


dlq_app.command("replay", epilog=REPLAY_EPILOG)(replay)
dlq_app.command("purge", epilog=PURGE_EPILOG)(purge)
