"""Which dead letters a command acts on: options shared by list, replay, stats and purge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from intentq.cli.common import usage
from intentq.dlq.base import LetterFilter, Reason
from intentq.ops.durations import parse_instant

ToolOpt = Annotated[str | None, typer.Option("--tool", help="Only letters of this tool.")]
ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason", help=f"Only this reason: {', '.join(r.value for r in Reason)}."),
]
ErrorTypeOpt = Annotated[
    str | None, typer.Option("--error-type", help="Only this error type, e.g. TimeoutError.")
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Dead at or after: a duration ago (2h, 7d) or an ISO time."),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="Dead before: a duration ago (30m) or an ISO time."),
]


def _instant(option: str, text: str | None, now: datetime | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, now)
    except ValueError as exc:
        raise usage(f"{option}: {exc}") from None


def parse_reason(text: str | None) -> Reason | None:
    if text is None:
        return None
    try:
        return Reason(text)
    except ValueError:
        known = ", ".join(r.value for r in Reason)
        raise usage(f"--reason {text!r} is not a reason; use one of: {known}") from None


def letter_filter(
    tool: str | None = None,
    reason: str | None = None,
    error_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    ids: tuple[str, ...] = (),
    now: datetime | None = None,
) -> LetterFilter:
    """A ``LetterFilter`` from command-line text; bad values are usage errors."""
    return LetterFilter(
        tool=tool,
        reason=parse_reason(reason),
        error_type=error_type,
        since=_instant("--since", since, now),
        until=_instant("--until", until, now),
        ids=ids,
    )


def has_conditions(f: LetterFilter) -> bool:
    """Whether ``f`` narrows anything down (no ids counted)."""
    return any(v is not None for v in (f.tool, f.reason, f.error_type, f.since, f.until))
