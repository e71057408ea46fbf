"""``intentq dashboard`` as a real process, and the extra it needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from intentq.config.settings import Settings
from tests.dashboard.conftest import START_TIMEOUT
from tests.support.net import free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-" + "t" * 28


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    return {
        **clean, "PYTHONPATH": str(ROOT), "INTENTQ_DEDUP_URL": settings.dedup_url,
        "INTENTQ_DLQ_URL": settings.dlq_url, "INTENTQ_BROKER_URL": settings.broker_url, **extra,
    }  # fmt: skip


def run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        cwd=ROOT,
    )  # fmt: skip


def test_importing_intentq_and_its_cli_imports_no_starlette() -> None:
    done = run(
        "import sys, intentq, intentq.cli.app\n"
        "print([m for m in ('starlette', 'uvicorn', 'jinja2') if m in sys.modules])"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_extra_the_command_names_the_install(settings: Settings) -> None:
    # None in sys.modules makes `import starlette` fail as if it were not installed.
    done = run(
        "import sys; sys.modules['starlette'] = None\n"
        "from intentq.cli import main; sys.argv = ['intentq', 'dashboard']; main()",
        environment(settings),
    )
    assert done.returncode == 3  # CONFIG
    assert done.stderr.splitlines() == [
        "intentq: error: the dashboard needs the 'starlette' package: "
        "pip install 'intentq[dashboard]'"
    ]


def test_a_public_address_without_a_token_is_refused(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "intentq.cli", "dashboard", "--host", "0.0.0.0"],
        capture_output=True, text=True, env=environment(settings), timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3
    (line,) = done.stderr.splitlines()
    assert "only with a token: set INTENTQ_DASHBOARD_TOKEN" in line


@pytest.fixture
def dashboard_process(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``intentq dashboard`` on a free port with a token; its output goes to a log file."""
    port = free_port()
    log = tmp_path / "dashboard.log"
    env = environment(settings, INTENTQ_DASHBOARD_TOKEN=TOKEN)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intentq.cli", "dashboard", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(
            lambda: port_open(port) or proc.poll() is not None, timeout=START_TIMEOUT,
            what="intentq dashboard to listen",
        )  # fmt: skip
        assert proc.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_command_serves_the_dashboard_and_never_prints_the_token(
    dashboard_process: tuple[str, Path],
) -> None:
    url, log = dashboard_process
    assert httpx.get(url).status_code == 401  # a token set is a token required, even here
    page = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200 and "Dead letters" in page.text
    login = httpx.get(f"{url}/?token={TOKEN}")
    assert login.status_code == 303

    output = log.read_text()
    assert f"dashboard on {url}/ (token required)" in output
    assert "token=***" in output  # the access log masks the ?token= login
    assert TOKEN not in output and TOKEN not in page.text
