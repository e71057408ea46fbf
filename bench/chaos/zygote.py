"""Worker processes forked from a preloaded parent, so a replacement consumes within a second.

Importing boto3, SQLAlchemy, Celery and pydantic takes a worker several seconds of CPU on
a busy machine; a chaos run that kills a worker every two seconds would mostly kill workers
still importing. The zygote (``python -m bench.chaos.zygote``) imports everything once,
then forks each worker on request, as gunicorn's ``--preload`` or Celery's prefork pool do.
Each worker is a real process in a session of its own: SIGKILL and SIGTERM reach it and
its pool children exactly as they would reach a worker started from scratch.

The protocol is one JSON object per line on the zygote's stdin and stdout:
``{"op": "spawn", "env": {...}, "log": path}`` -> ``{"pid": n}``;
``{"op": "exits"}`` -> ``{"exits": {pid: code}}`` (workers reaped since the last ask).
On end of input the zygote SIGKILLs the workers it started and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
READY = "zygote ready"


# -- the parent's side -----------------------------------------------------------------------


class Zygote:
    """The run's handle on a zygote process; thread-safe."""

    def __init__(self, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
        env["PYTHONPATH"] = str(ROOT)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.chaos.zygote"],
                env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True, text=True, bufsize=1,
            )  # fmt: skip
        self._lock = threading.Lock()
        self.exited: dict[int, int] = {}
        line = self._read()
        if line.strip() != READY:
            self.close()
            raise RuntimeError(f"the zygote did not start: {line!r}; see {log_path}")

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote exited with {self.proc.wait()}")
        return line

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply: dict[str, Any] = json.loads(self._read())
        return reply

    def spawn(self, env: dict[str, str], log_path: Path) -> int:
        """Fork a worker with ``env`` added to its environment; returns its pid."""
        return int(self._ask({"op": "spawn", "env": env, "log": str(log_path)})["pid"])

    def poll(self, pid: int) -> int | None:
        """The worker's exit code (negative: killed by that signal), or ``None`` if running."""
        if pid not in self.exited:
            for key, code in self._ask({"op": "exits"})["exits"].items():
                self.exited[int(key)] = int(code)
        return self.exited.get(pid)

    def close(self) -> None:
        """End the zygote; it SIGKILLs the workers still running."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the zygote's side -----------------------------------------------------------------------


def _preload() -> None:
    """Import (and warm up) what any worker needs, before the first fork."""
    import boto3
    import celery.worker  # noqa: F401
    import kombu.transport.redis  # noqa: F401

    import bench.chaos.tools
    import bench.chaos.worker  # noqa: F401
    import intentq.consumers.celery
    import intentq.consumers.sqs.service
    import intentq.dedup.redis.store
    import intentq.dedup.sql.store
    import intentq.dlq.sql  # noqa: F401

    # Loads botocore's SQS model; building a client opens no connection.
    boto3.session.Session().client(
        "sqs",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    ).close()


def _child(env: dict[str, str], log: str) -> None:
    """In the forked child: a session of its own, the log as stdout/stderr, run the worker."""
    code = 70
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.environ.update(env)
        from bench.chaos.worker import main

        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(exits: dict[int, int], children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        exits[pid] = os.waitstatus_to_exitcode(status)


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    _preload()
    stdout.write(READY + "\n")
    stdout.flush()
    children: set[int] = set()
    exits: dict[int, int] = {}
    try:
        while True:
            _reap(exits, children)
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if not ready:
                continue
            line = stdin.readline()
            if not line:
                return
            request = json.loads(line)
            if request["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    _child(request["env"], request["log"])
                children.add(pid)
                reply: dict[str, Any] = {"pid": pid}
            else:
                reply, exits = {"exits": exits}, {}
            stdout.write(json.dumps(reply) + "\n")
            stdout.flush()
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _reap(exits, children)


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
