"""``intentq dlq replay``: re-enqueue dead letters (same key), then remove or mark them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from intentq.cli.common import JsonFlag, TransportOpt, check_broker, load_settings, usage
from intentq.cli.exits import CliError
from intentq.cli.output import console, examples, note, print_json, table
from intentq.cli.selectors import (
    ErrorTypeOpt,
    ReasonOpt,
    SinceOpt,
    ToolOpt,
    UntilOpt,
    find_letters,
    has_conditions,
    letter_filter,
)
from intentq.ops.durations import parse_instant

if TYPE_CHECKING:
    from intentq.dlq.base import DeadLetter
    from intentq.dlq.replay import ReplayResult, ReplaySummary

REPLAY_EPILOG = examples(
    "intentq dlq replay --reason schema --dry-run",
    "intentq dlq replay --tool book_slot --since 2h --rate 20",
    "intentq dlq replay --all --limit 100 --json",
    "intentq dlq replay --reason exhausted --as-of 2026-12-01T09:30:00.123456+00:00"
    "   (continue a replay that stopped)",
    "intentq dlq replay 01a2265c-16c3-7000-b9f7-36db9bee8ffe --keep",
    "intentq dlq replay 36db9bee8ffe   (a shortened id: its last 8+ characters)",
)


def replay(
    letter_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID", help="Letters to replay: ids, or their last 8+ characters if unique."
        ),
    ] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Replay every letter.")] = False,
    tool: ToolOpt = None,
    reason: ReasonOpt = None,
    error_type: ErrorTypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; send nothing.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="At most N sends per second.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Look at most at N letters.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Send to this queue instead of the source one.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep replayed letters (marked) instead of removing.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Only letters dead before this ISO time and not replayed since: continue a "
            "replay that stopped, with the time it printed when it began.",
        ),
    ] = None,
    transport: TransportOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay dead letters: send each original body again, same key, then remove it.

    Choose letters by id, with --all, or with filters; with none of these it refuses. A key
    the store has completed meanwhile is skipped (the side effect happened); a failed key is
    reset first. A crash between sending and removing is safe: the next replay's duplicate is
    deduplicated. Exits 1 if any letter failed.

    --all and filters take the letters there are when the replay begins, page by page; one
    that stops (a crash, Ctrl-C) is continued by running it again with the --as-of time it
    printed: letters already replayed are not sent again.
    """
    from intentq.connections import opened_dlq, opened_store
    from intentq.dlq.replay import as_of as held_to
    from intentq.dlq.replay import producer_send
    from intentq.dlq.replay import replay as run_replay

    ids = tuple(letter_ids or ())
    f = letter_filter(tool, reason, error_type, since, until)
    if not ids and not all_letters and not has_conditions(f):
        raise usage(
            "say which letters to replay: letter ids, --all, or a filter "
            "(--tool, --reason, --error-type, --since, --until)"
        )
    if ids and (all_letters or has_conditions(f)):
        raise usage("give letter ids, or --all, or filters: not several")
    if all_letters and has_conditions(f):
        raise usage("--all replays every letter: drop it to use filters")
    if ids and as_of is not None:
        raise usage("--as-of goes with --all or filters, not with letter ids")
    try:
        start = datetime.now(UTC) if as_of is None else parse_instant(as_of)
    except ValueError as exc:
        raise usage(f"--as-of: {exc}") from None
    settings = check_broker(load_settings(transport=transport))
    with (
        opened_dlq(settings) as dlq,
        opened_store(settings) as store,
        producer_send(settings) as send,
    ):
        letters: list[DeadLetter] | Iterator[DeadLetter]
        if ids:
            letters = find_letters(dlq, ids)  # all exist, or nothing is sent
            total = len(letters)
        else:
            # Letters dead from now on (a replayed message failing again) wait for another
            # replay; the same --as-of continues this one.
            f = held_to(f, start)
            letters = dlq.iter(f)
            total = dlq.count(f)
            if not dry_run and not as_json:
                note(
                    f"replaying letters dead before {start.isoformat()}; if this stops, run it "
                    f"again with --as-of {start.isoformat()} to continue"
                )
        total = min(total, limit) if limit is not None else total
        with _progress(total, dry_run, as_json) as on_result:
            summary = run_replay(
                dlq, store, letters, send,
                to=to, dry_run=dry_run, rate=rate, limit=limit, keep=keep, on_result=on_result,
                problems_only=not as_json,
            )  # fmt: skip
    _summarise(summary, as_json)
    if summary.failed:
        raise CliError(f"{summary.failed} letter(s) failed to replay; they were kept")


@contextmanager
def _progress(
    total: int, dry_run: bool, as_json: bool
) -> Iterator[Callable[[ReplayResult], None] | None]:
    """A progress bar on a terminal, a line per letter otherwise, nothing for --json."""
    if as_json:
        yield None
        return
    out = console()
    if not out.is_terminal:

        def line(result: ReplayResult) -> None:
            where = f"{result.tool or '-'}:{result.key or '-'}"
            print(f"{result.action}\t{result.letter_id}\t{where}\t{result.detail}", flush=True)

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    verb = "planning" if dry_run else "replaying"
    with Progress(
        TextColumn(f"{verb}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        console=out, transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("", total=total or None)

        def advance(result: ReplayResult) -> None:
            bar.update(task, advance=1, description=f"{result.action} {result.letter_id[-12:]}")

        yield advance


def _summarise(summary: ReplaySummary, as_json: bool) -> None:
    counts = {
        "replayed": summary.replayed,
        "skipped": summary.skipped,
        "refused": summary.refused,
        "failed": summary.failed,
    }
    if as_json:
        results: list[dict[str, Any]] = [
            {
                "letter_id": r.letter_id,
                "tool": r.tool,
                "key": r.key,
                "action": str(r.action),
                "detail": r.detail,
            }
            for r in summary.results
        ]
        print_json({"dry_run": summary.dry_run, **counts, "results": results})
        return
    out = console()
    title = "replay plan (dry run: nothing sent)" if summary.dry_run else "replay summary"
    out.print(table(title, tuple(counts), [tuple(counts.values())]))
    if not out.is_terminal:
        return  # each letter already had its line
    for r in summary.results:
        if str(r.action) in ("refused", "would refuse", "failed"):
            out.print(f"{r.action}: {r.letter_id}: {r.detail}", markup=False)
