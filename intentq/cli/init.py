"""``intentq init``: create the tables and queues the settings name, or upgrade the tables."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from intentq.cli.common import JsonFlag, TransportOpt, check_broker, load_settings, usage
from intentq.cli.exits import CliError, ExitCode
from intentq.cli.output import console, examples, print_json, table

if TYPE_CHECKING:
    from intentq.config.settings import Settings

EPILOG = examples(
    "intentq init",
    "intentq init --check",
    "intentq init --sql > upgrade.sql",
    "INTENTQ_TRANSPORT=sqs INTENTQ_SQS_QUEUE=orders intentq init --json",
)

CheckFlag = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Report each table's schema version and the steps an upgrade would take; change "
        f"nothing. Exits {int(ExitCode.SCHEMA)} if a table is behind this intentq.",
    ),
]
SqlFlag = Annotated[
    bool,
    typer.Option(
        "--sql",
        help="Print the DDL `intentq init` would run, from the version each table is at, "
        "for a DBA to apply; change nothing.",
    ),
]


def init(
    transport: TransportOpt = None,
    as_json: JsonFlag = False,
    check: CheckFlag = False,
    sql: SqlFlag = False,
) -> None:
    """Create the store's and the DLQ's tables (or upgrade them to this intentq's schema
    version) and, for SQS, the queue and its DLQ.

    A table made by intentq 0.1 is adopted as version 1 with its rows, then upgraded. The SQS
    queue gets a redrive policy to its DLQ after INTENTQ_MAX_RECEIVES + 5 receives. Safe to
    run again, and from several processes: what exists is left as it is.
    """
    if check and sql:
        raise usage("--check and --sql do different things: give one")
    settings = check_broker(load_settings(transport=transport))
    if check:
        _check(settings, as_json)
        return
    if sql:
        from intentq.ops.init import schema_sql

        sys.stdout.write(schema_sql(settings))
        return
    from intentq.ops.init import init_resources

    steps = init_resources(settings)
    if as_json:
        print_json({"steps": [step.__dict__ for step in steps]})
        return
    rows = [(step.what, step.target, step.detail) for step in steps]
    console().print(table("intentq init", ("what", "where", "state"), rows))


def _check(settings: Settings, as_json: bool) -> None:
    """The versions found; ``ExitCode.SCHEMA`` if this intentq cannot run on one yet."""
    from intentq.ops.init import check_schemas

    checks = check_schemas(settings)
    if as_json:
        print_json({"schemas": [c.as_dict() for c in checks]})
    else:
        rows, steps = [], []
        for c in checks:
            s = c.status
            if s is None:
                rows.append((c.what, c.target, "-", "-", "no versioned schema", "-"))
                continue
            pending = ", ".join(str(p.number) for p in s.pending) or "none"
            rows.append((c.what, c.target, s.found_text, str(s.needs), s.state, pending))
            steps += [f"{s.what} version {p.number}: {p.doc}" for p in s.pending]
        columns = ("what", "where", "version", "needs", "state", "pending")
        out = console()
        out.print(table("intentq init --check", columns, rows))
        for line in steps:
            out.print(line, markup=False)
    problems = [c.status.problem for c in checks if c.status is not None and c.status.problem]
    if problems:
        raise CliError(str(problems[0]), ExitCode.SCHEMA)
