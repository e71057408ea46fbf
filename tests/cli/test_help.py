"""Every command explains itself, with an example; --version answers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from intentq import __version__
from intentq.cli.app import app

COMMANDS = [
    [],
    ["demo"],
    ["init"],
    ["worker"],
    ["enqueue"],
    ["result"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "replay"],
    ["dlq", "purge"],
    ["dlq", "stats"],
    ["dedup"],
    ["dedup", "get"],
    ["dedup", "forget"],
    ["dedup", "gc"],
    ["dashboard"],
    ["mcp"],
    ["relay"],
    ["outbox"],
    ["outbox", "stats"],
    ["outbox", "list"],
    ["outbox", "retry"],
    ["outbox", "purge"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "intentq")
def test_help_shows_usage_and_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage: intentq" in result.stdout
    assert "Example" in result.stdout
    assert result.stderr == ""


def test_every_registered_command_is_covered() -> None:
    from typer.main import get_command

    root = get_command(app)
    seen = set()
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        seen.add((name,))
        for sub in getattr(command, "commands", {}):
            seen.add((name, sub))
    assert seen == {tuple(c) for c in COMMANDS if c}


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"intentq {__version__}"


def test_worker_help_gives_choices_and_defaults() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "--transport [celery|sqs]" in text
    assert "--pool [prefork|threads|solo] Celery only" in text
    assert "--log-level [DEBUG|INFO|WARNING|ERROR|CRITICAL] Log level, in any case" in text
    assert "else 20 threads with SQS, 8 processes with Celery" in text
