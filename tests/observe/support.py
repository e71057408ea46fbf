"""Workers in subprocesses started by ``intentq worker``, and reading their ``/metrics``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.net import wait_until
from tests.support.services import ROOT

START_TIMEOUT = 60.0


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample ``/metrics`` serves: (name, labels, value)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode("utf-8")
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def settings_env(**settings: Any) -> dict[str, str]:
    """This process's environment without INTENTQ_*, plus ``settings`` as INTENTQ_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    env.update({f"INTENTQ_{k.upper()}": str(v) for k, v in settings.items() if v is not None})
    env["PYTHONPATH"] = str(ROOT)
    return env


class CliWorker:
    """``intentq worker`` in a session of its own, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = [sys.executable, "-m", "intentq.cli", "worker", *args]
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], Any]) -> CliWorker:
        return self.launch().wait(ready)

    def launch(self) -> CliWorker:
        """Start the process; ``wait`` for it to be ready (start several, then wait)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def wait(self, ready: Callable[[], Any]) -> CliWorker:
        def started() -> Any:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{self.log()}")
            return ready()

        wait_until(started, timeout=START_TIMEOUT, interval=0.1, what=f"{self.argv[4:]}")
        return self

    def ready_line(self) -> bool:
        """Celery's `` ready.`` line is in the log."""
        return b" ready." in self.log_path.read_bytes()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_bytes()[-8000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        """SIGTERM to the main process; SIGKILL whatever is left after a while."""
        if self.proc is None:
            return
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        self.kill()


def port_serves(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
