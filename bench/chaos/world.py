"""What a chaos run starts and breaks: its own Redis servers, a PostgreSQL schema, workers.

Everything listens on 127.0.0.1 only. Worker processes run in sessions of their own, so a
SIGKILL reaches a Celery worker's pool children too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from bench.chaos.zygote import Zygote
from tests.support.net import free_port, port_open, wait_until


class RedisServer:
    """A redis-server of the run's own on a free port; ``durable`` means AOF, fsync always.

    A durable server keeps every acknowledged write across a SIGKILL: a store that forgot
    completed keys could not answer later duplicates.
    """

    def __init__(self, workdir: Path, *, durable: bool = True, name: str = "redis") -> None:
        self.port = free_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        argv = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--dir", str(self.dir), "--logfile", str(self.log_path), *persistence]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(self._answers, timeout=30, interval=0.02, what=f"redis-server :{self.port}")

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log_tail()}") from None
            return False
        finally:
            client.close()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        wait_until(lambda: not port_open(self.port), timeout=10, what="the port to close")

    def restart(self, down_for: float = 0.0, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill (SIGKILL by default), stay down ``down_for`` seconds, start on the same port."""
        self.stop(sig)
        if down_for:
            time.sleep(down_for)
        self.start()
        self.restarts += 1

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class PgSchema:
    """A schema of the run's own in an existing database; URLs and DSNs that default to it."""

    def __init__(self, pg_url: str, name: str) -> None:
        self.pg_url = pg_url  # postgresql+psycopg://user@host:port/db
        self.name = name
        self.dsn = "postgresql://" + pg_url.partition("://")[2]

    def url(self, application: str) -> str:
        """A SQLAlchemy URL whose connections use this schema and name themselves."""
        options = quote(f"-csearch_path={self.name}", safe="")
        sep = "&" if "?" in self.pg_url else "?"
        return f"{self.pg_url}{sep}options={options}&application_name={application}"

    def create(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')

    def terminate(self, application: str) -> int:
        """``pg_terminate_backend`` every connection named ``application``; how many."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)


def ensure_database(pg_url: str) -> None:
    """Create the URL's database on its server if it is missing."""
    base, _, name = pg_url.partition("?")[0].rpartition("/")
    admin = "postgresql://" + base.partition("://")[2] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


class WorkerProc:
    """A chaos worker forked by the zygote, in a session of its own, logging to a file."""

    def __init__(
        self,
        zygote: Zygote,
        config: dict[str, Any],
        env: dict[str, str],
        log_path: Path,
        ready_marker: bytes,
    ) -> None:
        from bench.chaos.worker import CONFIG_ENV

        self.zygote = zygote
        self.log_path = log_path
        self.ready_marker = ready_marker
        self._ready = False
        self.pid = zygote.spawn({**env, CONFIG_ENV: json.dumps(config)}, log_path)
        self.started = time.monotonic()

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it), or ``None`` while it runs."""
        return self.zygote.poll(self.pid)

    @property
    def alive(self) -> bool:
        return self.poll() is None

    @property
    def ready(self) -> bool:
        """The worker has logged that it consumes (its ``ready_marker``)."""
        if not self._ready:
            try:
                self._ready = self.ready_marker in self.log_path.read_bytes()
            except OSError:
                return False
        return self._ready

    def wait(self, timeout: float) -> int:
        """Its exit code; ``TimeoutError`` if it still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.pid} still runs after {timeout}s")
            time.sleep(0.05)
        return code

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the worker and everything in its session (Celery's pool children)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:  # not yet a session leader, or already gone
            self.signal(signal.SIGKILL)
        self.wait(15)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (finish what runs, then exit); SIGKILL the session if it lingers."""
        self.signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            self.wait(timeout)
        code = self.poll()
        # Pool children left behind, or a worker that did not stop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if code is None:
            self.signal(signal.SIGKILL)
            self.wait(15)
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]
