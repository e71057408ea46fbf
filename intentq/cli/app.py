"""The root ``intentq`` command: global options and sub-command groups.

Every command is thin: it parses, builds ``Settings``, and calls importable functions
(``intentq.ops``, ``intentq.dlq.replay``, the consumers). Heavy drivers load inside commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from intentq import __version__
from intentq.cli import dashboard as dashboard_cmd
from intentq.cli import demo as demo_cmd
from intentq.cli import enqueue as enqueue_cmd
from intentq.cli import init as init_cmd
from intentq.cli import mcp as mcp_cmd
from intentq.cli import outbox as outbox_cmd
from intentq.cli import worker as worker_cmd
from intentq.cli.dedup import dedup_app
from intentq.cli.dlq.inspect import dlq_app
from intentq.cli.group import IntentqGroup

app = typer.Typer(
    name="intentq",
    cls=IntentqGroup,
    help="Safe-to-retry tool intents: run each side effect at most once per idempotency key.",
    epilog="Example:  intentq demo   (the whole story on SQLite, no servers needed)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as Click renders it: typer's Rich help shows a flag such as --json as
    # taking a <bool>.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"intentq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an unexpected error (before the command: "
            "intentq --debug dlq list).",
        ),
    ] = False,
) -> None:
    """Safe-to-retry tool intents over Celery and Amazon SQS."""
    # Nothing to do here: IntentqGroup.invoke reads --debug from the parsed root options.


app.command("demo", epilog=demo_cmd.EPILOG)(demo_cmd.demo)
app.command("init", epilog=init_cmd.EPILOG)(init_cmd.init)
app.command("worker", epilog=worker_cmd.EPILOG)(worker_cmd.worker)
app.command("enqueue", epilog=enqueue_cmd.ENQUEUE_EPILOG)(enqueue_cmd.enqueue)
app.command("result", epilog=enqueue_cmd.RESULT_EPILOG)(enqueue_cmd.result)
app.add_typer(dlq_app, name="dlq")
app.add_typer(dedup_app, name="dedup")
app.command("dashboard", epilog=dashboard_cmd.EPILOG)(dashboard_cmd.dashboard)
app.command("mcp", epilog=mcp_cmd.EPILOG)(mcp_cmd.mcp)
app.command("relay", epilog=outbox_cmd.RELAY_EPILOG)(outbox_cmd.relay)
app.add_typer(outbox_cmd.outbox_app, name="outbox")


def main() -> None:
    """Console-script entry point."""
    app()
