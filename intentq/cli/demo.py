"""``intentq demo``: the whole story in one process, on SQLite, in under a minute."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from intentq.cli.exits import CliError, ExitCode
from intentq.cli.output import console

EPILOG = (
    "Example:  intentq demo --dir ./demo-run   (keeps the SQLite files and demo.log there;"
    " run it again and it starts over)"
)


def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help=(
                "Folder for the demo's SQLite files and log (default: a temporary folder). "
                "Each run starts from empty files: it replaces demo-intentq.db, "
                "demo-broker.db, demo-tools.db and demo.log there (with their SQLite -wal, "
                "-shm, -journal files) and touches nothing else in the folder."
            ),
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the whole story: duplicates, a slow tool, a flaky tool, poison, a fix, a replay.

    Needs no configuration and no servers: SQLite store, SQLite DLQ and a Celery worker in a
    thread of this process over kombu's SQLite broker. Exits 0 only if every check holds.
    """
    from intentq.demo.stage import logs_in
    from intentq.demo.story import run_demo

    out = console()
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="intentq-demo-") as tmp, logs_in(Path(tmp)):
            checks = run_demo(Path(tmp), out)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        with logs_in(directory) as log:
            checks = run_demo(directory, out)
        out.print(f"files and worker log kept in {directory} ({log.name})")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise CliError(f"demo checks failed: {', '.join(failed)}", ExitCode.FAILURE)
    out.print("[bold green]all checks passed[/bold green]")
