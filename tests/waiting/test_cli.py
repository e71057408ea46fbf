"""``intentq enqueue --wait`` against a real SQS worker: a key reused with other arguments
is its own exit code and names both fingerprints, never the other call's result."""

from __future__ import annotations

import json

from intentq.cli.exits import ExitCode
from intentq.intent import fingerprint
from tests.cli.conftest import Env, WorkerProcess, cli_db, effects, env, worker  # noqa: F401


def test_a_reused_key_with_other_arguments_is_refused(
    env: Env,  # noqa: F811
    worker: WorkerProcess,  # noqa: F811
    cli_db: str,  # noqa: F811
) -> None:
    first = env.run("enqueue", "book_slot", "--args", '{"slot": "15:00"}', "--key", "K",
                    "--wait", "30", "--json")  # fmt: skip
    assert first.code == 0, (first, worker.log())
    assert json.loads(first.stdout)["result"] == {"booked": "15:00"}

    again = env.run("enqueue", "book_slot", "--args", '{"slot": "16:00"}', "--key", "K",
                    "--wait", "30")  # fmt: skip

    assert again.code == ExitCode.KEY_REUSE
    assert "15:00" not in again.stdout
    line = again.one_error_line()
    assert fingerprint("book_slot", {"slot": "15:00"})[:12] in line
    assert fingerprint("book_slot", {"slot": "16:00"})[:12] in line
    assert effects(cli_db, "K") == 1
