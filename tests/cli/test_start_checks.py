"""What a worker says at start, the help's flag forms, and the unknown-setting hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentq.cli.app import app
from intentq.cli.exits import ExitCode, code_for
from intentq.config.settings import Settings
from intentq.dedup.memory import MemoryDedupStore
from intentq.dlq.memory import MemoryDeadLetterStore
from intentq.errors import ConfigError, SchemaMismatch
from intentq.preflight import StoreRequired, preflight
from tests.cli.conftest import ROOT, Env


@pytest.mark.parametrize("command", [[], ["dlq", "list"], ["worker"]], ids=" ".join)
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert "  --help  " in result.stdout or "  --help " in result.stdout
    for flag in {"": ["--version", "--debug"], "dlq list": ["--json"],
                 "worker": ["--require-store"]}[" ".join(command)]:  # fmt: skip
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(flag))
        assert line.strip().split()[1] != "<bool>", line


def test_help_as_a_process_has_no_bool_metavar(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "intentq.cli", "--help"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "--version" in done.stdout
    assert "<bool>" not in done.stdout


def test_unknown_variable_names_the_closest_setting(tmp_path: Path) -> None:
    ran = Env({"INTENTQ_DEDUPURL": "redis://x"}, tmp_path).run("dlq", "list")
    assert ran.code == ExitCode.CONFIG
    line = ran.one_error_line()
    assert "unknown setting INTENTQ_DEDUPURL; did you mean INTENTQ_DEDUP_URL?" in line
    assert "docs/configuration.md" in line


def test_unknown_file_key_names_the_closest_setting(tmp_path: Path) -> None:
    (tmp_path / "intentq.toml").write_text("shutdown_grase = 3\n")
    ran = Env({}, tmp_path).run("dlq", "list")
    assert ran.code == ExitCode.CONFIG
    assert "did you mean shutdown_grace?" in ran.one_error_line()


class _Down(MemoryDedupStore):
    def get(self, tool: str, key: str) -> None:
        raise ConnectionError("connection refused")


class _OldSchema(MemoryDeadLetterStore):
    def check_schema(self) -> None:
        raise SchemaMismatch("dead-letter table", "1", "2")


def test_preflight_warns_of_an_unreachable_store_and_says_what_it_will_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checks = preflight(
        Settings(dedup_url="redis://u:secret@h:1/0"), _Down(), MemoryDeadLetterStore()
    )
    assert [c.ok for c in checks] == [False, True]
    assert "secret" not in caplog.text
    assert (
        "store redis://u:***@h:1/0: NOT reachable (connection refused); claims are deferred"
        in caplog.text
    )


def test_preflight_with_require_store_raises_a_named_exit() -> None:
    with pytest.raises(StoreRequired) as raised:
        preflight(Settings(require_store=True), _Down(), MemoryDeadLetterStore())
    assert code_for(raised.value) == ExitCode.STORE_REQUIRED


def test_preflight_stops_on_a_schema_mismatch() -> None:
    with pytest.raises(SchemaMismatch) as raised:
        preflight(Settings(), MemoryDedupStore(), _OldSchema())
    # An error with an exit code of its own, never a warning the worker starts after.
    assert isinstance(raised.value, ConfigError) and code_for(raised.value) != ExitCode.OK


def test_sqs_worker_with_require_store_exits_when_the_store_is_down(env: Env) -> None:
    down = env.with_(INTENTQ_DEDUP_URL="redis://127.0.0.1:1/0")
    down.extra = env.extra
    ran = down.spawn("worker", "--app", "intentq.demo.example:registry", "--require-store")
    assert ran.code == ExitCode.STORE_REQUIRED, ran
    assert "require_store is set" in ran.stderr.splitlines()[-1]
