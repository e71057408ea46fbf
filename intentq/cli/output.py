"""Shared rendering: Rich for people, one JSON document for scripts, one line per error."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from intentq.config.redact import redacted

# Piped output is not squeezed into 80 columns: ids and keys are long.
PIPE_WIDTH = 160
ERROR_MAX_CHARS = 600
_NOISE = ("For further information visit",)


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr), wide when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def one_line(text: str) -> str:
    """``text`` folded into a single line, validator noise dropped, secrets masked."""
    parts = [p.strip() for p in text.splitlines()]
    flat = " ".join(p for p in parts if p and not p.startswith(_NOISE))
    flat = redacted(flat)
    if len(flat) > ERROR_MAX_CHARS:
        flat = flat[: ERROR_MAX_CHARS - 3] + "..."
    return flat


def error_line(message: str) -> None:
    """The one line an error gets, on stderr."""
    sys.stderr.write(f"intentq: error: {one_line(message)}\n")
    sys.stderr.flush()


def note(message: str) -> None:
    """A side remark for people, on stderr, so stdout stays parseable."""
    sys.stderr.write(f"intentq: {message}\n")
    sys.stderr.flush()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=_default, sort_keys=False) + "\n")
    sys.stdout.flush()


def cell_text(value: Any) -> Text:
    """A cell printed literally (no Rich markup); ``None`` as a dash."""
    return Text("-" if value is None else str(value))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    keep: Sequence[str] = ("id", "key", "letter"),
    **kwargs: Any,
) -> Table:
    """A plain Rich table; ``None`` cells print as a dash; ``keep`` columns are never folded
    (ids must stay copyable), the others fold when the screen is narrow."""
    out = Table(title=title, title_justify="left", **kwargs)
    for i, column in enumerate(columns):
        if column in keep:
            widest = max([len(column), *(len(str(row[i])) for row in rows)])
            out.add_column(column, no_wrap=True, min_width=widest)
        else:
            out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(cell_text(cell) for cell in row))
    return out


def show_fields(title: str, fields: Mapping[str, Any]) -> Table:
    """A two-column table of ``name: value``."""
    out = Table(title=title, title_justify="left", show_header=False)
    out.add_column("field", style="bold")
    out.add_column("value", overflow="fold")
    for name, value in fields.items():
        out.add_row(name, cell_text(value))
    return out


def when(value: datetime | float | None) -> str | None:
    """A timestamp for a table cell (UTC, to the second)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value).astimezone()
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def examples(*lines: str) -> str:
    """A help epilog: one example command per paragraph (Rich help joins single newlines)."""
    return "\n\n".join(["Examples:", *(f"  {line}" for line in lines)])
