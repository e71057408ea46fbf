"""``intentq relay`` and ``intentq outbox stats | list | retry | purge``: the transactional
outbox's relay, and the operators' view of its table."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from intentq.cli.common import JsonFlag, check_broker, choice_option, load_settings
from intentq.cli.common import usage as usage_error
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.group import typer_app
from intentq.cli.output import console, examples, print_json, show_fields, table, when

if TYPE_CHECKING:
    from intentq.outbox.database import OutboxDatabase

RELAY_EPILOG = examples(
    "INTENTQ_OUTBOX_URL=postgresql+psycopg://app@db/app intentq relay",
    "intentq relay --once --json   (send what is ready, then exit)",
    "intentq relay --metrics-port 9101",
)
STATES = ("pending", "sent", "failed")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
IdsArg = Annotated[
    list[int] | None, typer.Argument(metavar="ID", help="Row ids (from `intentq outbox list`).")
]


def relay(
    once: Annotated[
        bool, typer.Option("--once", help="Send the rows that are ready, then exit.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve Prometheus metrics here (default: INTENTQ_METRICS_PORT).",
        ),
    ] = None,
    log_level: Annotated[
        str, choice_option("--log-level", LOG_LEVELS, "Log level, in any case.")
    ] = "INFO",
    as_json: JsonFlag = False,
) -> None:
    """Send committed outbox rows to SQS or Celery and mark them sent, until SIGTERM.

    Each row goes to the transport and queue it was written for.

    Several relays may run on one PostgreSQL table (each locks its own rows); on SQLite one
    relay sends at a time and the others stand by. SIGTERM finishes the batch in flight. A
    broker outage leaves the rows pending; a database outage stops the relay (exit 4).
    """
    from intentq.outbox.relay import run_relay

    settings = check_broker(load_settings(metrics_port=metrics_port))
    logging.basicConfig(
        level=log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    totals = run_relay(settings, once=once)
    if as_json:
        print_json(totals.__dict__)
    elif once:
        console().print(f"sent {totals.sent}, failed {totals.failed}, deferred {totals.deferred}")


outbox_app = typer_app(
    help="Inspect and manage the transactional outbox table (INTENTQ_OUTBOX_URL).",
    epilog="Example:  intentq outbox stats",
)


@contextmanager
def _opened() -> Iterator[OutboxDatabase]:
    from intentq.connections import open_outbox_for

    db = open_outbox_for(load_settings(), must_exist=True)
    try:
        db.check_schema()
        yield db
    finally:
        db.close()


def _age(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:.1f}s"


@outbox_app.command("stats", epilog="Example:  intentq outbox stats --json")
def stats(as_json: JsonFlag = False) -> None:
    """Rows pending, sent (kept for audit) and failed; the relay's lag (the oldest pending
    row's age) and how long ago the last row was sent."""
    from intentq.outbox.ops import stats as count

    with _opened() as db:
        counted = count(db)
    if as_json:
        print_json(counted.as_dict())
        return
    shown = {
        "pending": counted.pending,
        "sent": counted.sent,
        "failed": counted.failed,
        "relay lag (oldest pending)": _age(counted.oldest_pending_age),
        "last sent": None if counted.last_sent_age is None else f"{counted.last_sent_age:.1f}s ago",
    }
    if db.dialect == "sqlite":
        shown["relay holding the table"] = counted.relay_owner
    console().print(show_fields("outbox", shown))
    if counted.failed:
        console().print(
            f"{counted.failed} row(s) cannot be sent: `intentq outbox list --state failed`, then "
            "`intentq outbox retry` or `intentq outbox purge --failed`"
        )


@outbox_app.command(
    "list", epilog="Example:  intentq outbox list --state failed --json"
)  # fmt: skip
def list_rows(
    state: Annotated[
        str | None, choice_option("--state", STATES, "Only rows in this state.")
    ] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool's rows.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most.")] = 50,
    after: Annotated[
        int | None, typer.Option("--after", help="Rows after this id (paging).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rows oldest first: id, state, tool, key, queue, attempts, error, times."""
    from intentq.outbox.ops import list_rows as rows_of
    from intentq.outbox.table import RowState

    with _opened() as db:
        rows = rows_of(
            db, state=RowState(state) if state else None, tool=tool, limit=limit, after=after
        )
    if as_json:
        print_json({"rows": [row.summary() for row in rows]})
        return
    columns = ("id", "state", "tool", "key", "queue", "attempts", "created", "sent", "error")
    cells = [
        (r.id, r.state, r.tool, r.key, r.queue, r.attempts, when(r.created_at), when(r.sent_at),
         r.error)
        for r in rows
    ]  # fmt: skip
    console().print(table(f"outbox: {len(rows)} row(s)", columns, cells))


@outbox_app.command("retry", epilog="Example:  intentq outbox retry 41 42   |   --all-failed --yes")
def retry(
    ids: IdsArg = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed row.")] = False,
    yes: YesFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Put failed rows back to pending (after a fix: the queue created, the limit raised)."""
    from intentq.outbox.ops import retry_failed

    chosen = _chosen(ids, all_failed, "--all-failed")
    _confirm(yes, f"Send {'every failed row' if chosen is None else len(chosen)} again?")
    with _opened() as db:
        moved = retry_failed(db, chosen)
    if as_json:
        print_json({"retried": moved})
    else:
        console().print(f"{moved} failed row(s) back to pending")


@outbox_app.command(
    "purge", epilog="Example:  intentq outbox purge --older-than 1d   |   --failed 41 --yes"
)
def purge(
    ids: IdsArg = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Sent rows sent longer ago than this (30m, 12h, 7d)."),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Failed rows (those given, or all) instead.")
    ] = False,
    yes: YesFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete sent rows past a retention (default INTENTQ_OUTBOX_RETENTION; the relay does
    this itself), or, with --failed, rows that will never be sent."""
    from intentq.ops.durations import parse_duration
    from intentq.outbox.ops import purge_failed, purge_sent

    if failed and older_than:
        raise usage_error("--failed deletes failed rows, --older-than sent ones: give one")
    if ids and not failed:
        raise usage_error("row ids name failed rows: add --failed")
    if failed:
        _confirm(yes, f"Delete {'every failed row' if not ids else len(ids)} for good?")
        with _opened() as db:
            removed = purge_failed(db, ids or None)
    else:
        settings = load_settings()
        try:
            age = (
                parse_duration(older_than).total_seconds()
                if older_than
                else settings.outbox_retention
            )
        except ValueError as exc:
            raise usage_error(str(exc)) from None
        with _opened() as db:
            removed = purge_sent(db, age)
    if as_json:
        print_json({"purged": removed})
    else:
        console().print(f"deleted {removed} row(s)")


def _chosen(ids: list[int] | None, every: bool, flag: str) -> list[int] | None:
    if ids and every:
        raise usage_error(f"give row ids or {flag}, not both")
    if not ids and not every:
        raise usage_error(f"name the rows: ids, or {flag}")
    return None if every else list(ids or [])


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise usage_error("refusing without --yes: no terminal to ask")
    if not typer.confirm(question, default=False):
        raise CliError("nothing done", ExitCode.FAILURE)
