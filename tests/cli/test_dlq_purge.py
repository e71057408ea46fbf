"""``dlq purge``: nothing goes without --yes or a typed "y"; ids, ages and --all."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from intentq.cli.exits import ExitCode
from intentq.dlq import DeadLetterStore
from tests.cli.conftest import Env, make_letter


@pytest.fixture
def ids(dlq: DeadLetterStore) -> list[str]:
    """Three letters: dead 3 days, 2 hours and 1 minute ago."""
    ages = (timedelta(days=3), timedelta(hours=2), timedelta(minutes=1))
    return [dlq.put(make_letter(age=age)) for age in ages]


def remaining(dlq: DeadLetterStore) -> list[str]:
    return [letter.id for letter in dlq.iter()]


def test_without_yes_and_without_a_terminal_refuses(
    env: Env, dlq: DeadLetterStore, ids: list[str]
) -> None:
    ran = env.run("dlq", "purge", "--all", input="y\n")  # stdin is a pipe, not a terminal
    assert ran.code == ExitCode.USAGE
    assert "without --yes" in ran.one_error_line()
    assert remaining(dlq) == ids


def test_no_selector_refuses(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    for args in ([], ["--all", ids[0]], ["--all", "--older-than", "1d"]):
        ran = env.run("dlq", "purge", "--yes", *args)
        assert ran.code == ExitCode.USAGE
        ran.one_error_line()
    assert remaining(dlq) == ids


def test_by_id(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    ran = env.run("dlq", "purge", ids[1], "--yes", "--json")
    assert ran.code == 0
    assert json.loads(ran.stdout) == {"dry_run": False, "matched": 1, "purged": 1}
    assert remaining(dlq) == [ids[0], ids[2]]


def test_older_than(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    dry = env.run("dlq", "purge", "--older-than", "1h", "--dry-run")
    assert "would purge 2" in dry.stdout
    assert remaining(dlq) == ids
    ran = env.run("dlq", "purge", "--older-than", "1h", "--yes")
    assert ran.code == 0
    assert "purged 2" in ran.stdout
    assert remaining(dlq) == [ids[2]]


def test_all(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    ran = env.run("dlq", "purge", "--all", "-y")
    assert ran.code == 0
    assert "purged 3" in ran.stdout
    assert remaining(dlq) == []


def run_in_terminal(env: Env, args: list[str], answer: bytes, timeout: float = 30) -> str:
    """Run ``intentq ARGS`` on a pseudo-terminal, answer its question, return what it showed."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "intentq.cli", *args],
        cwd=env.cwd, env={**env.process_env(), "TERM": "dumb"},
        stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if not answered and b"[y/N]" in shown:
                    os.write(controller, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    assert answered, shown
    return shown.decode(errors="replace") + f"\n[exit {proc.returncode}]"


def test_confirmed_on_a_terminal(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    shown = run_in_terminal(env, ["dlq", "purge", "--all"], b"y\n")
    assert "Delete 3 dead letter(s) for good?" in shown
    assert "purged 3" in shown and "[exit 0]" in shown
    assert remaining(dlq) == []


def test_declined_on_a_terminal(env: Env, dlq: DeadLetterStore, ids: list[str]) -> None:
    shown = run_in_terminal(env, ["dlq", "purge", ids[0]], b"n\n")
    assert "nothing deleted" in shown and f"[exit {int(ExitCode.FAILURE)}]" in shown
    assert remaining(dlq) == ids
