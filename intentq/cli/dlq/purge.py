"""``intentq dlq purge``: delete dead letters for good, after confirmation."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer

from intentq.cli.common import JsonFlag, load_settings, usage
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.output import console, examples, note, print_json
from intentq.cli.selectors import ReasonOpt, ToolOpt, find_letters, letter_filter
from intentq.dlq.base import LetterFilter
from intentq.ops.durations import parse_duration

PURGE_EPILOG = examples(
    "intentq dlq purge --older-than 7d --yes",
    "intentq dlq purge --older-than 2d --tool book_slot --reason exhausted --yes",
    "intentq dlq purge 01a2265c-16c3-7000-b9f7-36db9bee8ffe",
    "intentq dlq purge 36db9bee8ffe 5d0c31a7e2b4 --yes   (shortened ids: the last 8+ characters)",
    "intentq dlq purge --all --dry-run",
)


def purge(
    letter_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID", help="Letters to delete: ids, or their last 8+ characters if unique."
        ),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Letters dead longer ago than this (30m, 12h, 7d)."),
    ] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Every letter.")] = False,
    tool: ToolOpt = None,
    reason: ReasonOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete dead letters for good: by id, by age, or all of them.

    --tool and --reason narrow --older-than and --all. Asks for confirmation unless --yes;
    without a terminal to ask on, refuses (exit 2). Deletes in batches, each for good once
    reported: a purge that stops is finished by running it again.
    """
    from intentq.connections import opened_dlq
    from intentq.dlq.purge import purge as run_purge

    ids = tuple(letter_ids or ())
    if sum([bool(ids), older_than is not None, all_letters]) != 1:
        raise usage("say which letters to purge: letter ids, --older-than DURATION, or --all")
    narrowed = letter_filter(tool, reason)
    if ids and narrowed != LetterFilter():
        raise usage("--tool and --reason narrow --older-than or --all, not letter ids")
    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            raise usage(f"--older-than: {exc}") from None
    now = datetime.now(UTC)
    with opened_dlq(load_settings()) as dlq:
        if ids:
            # An unknown id stops everything before anything is deleted.
            ids = tuple(letter.id for letter in find_letters(dlq, ids))
            f = LetterFilter(ids=ids)
        else:
            # Letters dead after this moment were not counted or confirmed: left alone.
            f = replace(narrowed, until=now - age if age else now)
        count = dlq.count(f)
        if count == 0 or dry_run:
            _report(0, count, dry_run, as_json)
            return
        if not yes:
            _confirm(count)
        progress = None if as_json else _progress(count)
        if ids:
            deleted = run_purge(dlq, ids=ids)
        elif age is not None:
            deleted = run_purge(dlq, older_than=age, filter=narrowed, now=now, on_progress=progress)
        else:
            deleted = run_purge(dlq, all_letters=True, filter=f, on_progress=progress)
    _report(deleted, count, False, as_json)


def _progress(count: int) -> Callable[[int], None]:
    """A line on stderr per batch, so a long purge shows it is moving (stdout stays the
    result)."""

    def progress(deleted: int) -> None:
        if deleted < count:
            note(f"purged {deleted} of {count} dead letter(s) so far")

    return progress


def _confirm(count: int) -> None:
    if not sys.stdin.isatty():
        raise usage(
            f"refusing to delete {count} dead letter(s) without --yes: no terminal to confirm on"
        )
    if not typer.confirm(f"Delete {count} dead letter(s) for good?", default=False):
        raise CliError("nothing deleted", ExitCode.FAILURE)


def _report(deleted: int, matched: int, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, "matched": matched, "purged": deleted})
    elif dry_run:
        console().print(f"would purge {matched} dead letter(s) (dry run: nothing deleted)")
    else:
        console().print(f"purged {deleted} dead letter(s)")
