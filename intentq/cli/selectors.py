"""Which dead letters a command acts on: the filter options ``list``, ``replay`` and ``stats``
share, and the letter ids ``show``, ``replay`` and ``purge`` take (whole, or shortened)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer

from intentq.cli.common import usage
from intentq.cli.exits import CliError, ExitCode
from intentq.dlq.base import DeadLetter, DeadLetterStore, LetterFilter, Reason
from intentq.errors import LetterNotFound
from intentq.ops.durations import parse_instant

# A shortened letter id: its last characters, at least this many (tables show the last 12).
MIN_ID_SUFFIX = 8
# An ambiguous shortened id names at most this many of the letters it matches.
SHOWN_MATCHES = 5

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


def find_letters(dlq: DeadLetterStore, given: Sequence[str]) -> list[DeadLetter]:
    """The letters ``given`` names, in that order and each once.

    Each is a letter's id, or the last ``MIN_ID_SUFFIX`` or more characters of exactly one
    letter's id (the short ids that tables and replay progress print). A whole id costs one
    ``get``; the shortened ones one ``ending_in`` (a query on SQL, one more scan on SQS).
    An ambiguous one is a usage error naming its matches; one that names no letter stops
    everything (exit 5) before the command acts on any.
    """
    found: dict[str, DeadLetter] = {}
    shortened: list[str] = []
    for text in dict.fromkeys(given):
        try:
            found[text] = dlq.get(text)
        except LetterNotFound:
            if len(text) < MIN_ID_SUFFIX:
                raise CliError(
                    f"no dead letter with id {text!r} (a shortened id needs its last "
                    f"{MIN_ID_SUFFIX} characters or more)",
                    ExitCode.NOT_FOUND,
                ) from None
            shortened.append(text)
    for text, letters in dlq.ending_in(shortened).items():
        found[text] = _only(text, letters)
    unique = {found[text].id: found[text] for text in given}
    return list(unique.values())


def _only(text: str, letters: list[DeadLetter]) -> DeadLetter:
    if not letters:
        raise CliError(
            f"no dead letter with id {text!r}, nor one whose id ends in it", ExitCode.NOT_FOUND
        )
    if len(letters) > 1:
        shown = ", ".join(letter.id for letter in letters[:SHOWN_MATCHES])
        more = f" and {len(letters) - SHOWN_MATCHES} more" if len(letters) > SHOWN_MATCHES else ""
        raise usage(
            f"{len(letters)} letter ids end in {text!r}: {shown}{more}; give more of the id"
        )
    return letters[0]
