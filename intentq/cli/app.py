"""The root ``intentq`` command: global options and sub-command groups."""

from __future__ import annotations

import typer

from intentq import __version__

app = typer.Typer(
    name="intentq",
    help="Safe-to-retry tool intents: run each side effect at most once per idempotency key.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"intentq {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Safe-to-retry tool intents over Celery and Amazon SQS."""


def main() -> None:
    """Console-script entry point."""
    app()
