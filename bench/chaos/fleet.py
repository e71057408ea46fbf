"""N worker processes kept running: one is SIGKILLed now and then, and replaced at once."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos.world import WorkerProc
from bench.chaos.zygote import Zygote


@dataclass(frozen=True)
class Kill:
    """A SIGKILL: the worker, every process of its session (pool children), the wall time."""

    pid: int
    pids: frozenset[int]
    at: float
    log: Path


def session_pids(sid: int) -> frozenset[int]:
    """Processes whose session is ``sid`` (a worker started with ``start_new_session``)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start at state, ppid, pgrp.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            found.add(int(entry.name))
    return frozenset(found | {sid})


@dataclass(frozen=True)
class Exit:
    """A worker that exited without being killed: a crash the run reports."""

    pid: int
    code: int | None
    log_tail: str


class Fleet:
    """Starts workers from ``config(index)``; ``kill_one`` and ``reap`` keep ``size`` alive."""

    def __init__(
        self,
        size: int,
        config: Callable[[int], dict[str, Any]],
        env: dict[str, str],
        workdir: Path,
        ready_marker: bytes,
        zygote: Zygote,
    ) -> None:
        self.size = size
        self.zygote = zygote
        self.ready_marker = ready_marker
        self._config = config
        self._env = env
        self.workdir = workdir
        self.workers: list[WorkerProc] = []
        self.started = 0
        self.killed: list[Kill] = []
        self.exits: list[Exit] = []

    def spawn(self) -> WorkerProc:
        index = self.started
        self.started += 1
        log = self.workdir / f"worker-{index:03d}.log"
        worker = WorkerProc(self.zygote, self._config(index), self._env, log, self.ready_marker)
        self.workers.append(worker)
        return worker

    def fill(self) -> None:
        while len(self.live) < self.size:
            self.spawn()

    @property
    def live(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.alive]

    @property
    def kills(self) -> int:
        return len(self.killed)

    def kill_one(self, rng: random.Random) -> WorkerProc | None:
        """SIGKILL a random worker that is consuming, and start its replacement.

        A worker still importing its modules is spared: killing it would test nothing.
        """
        ready = [w for w in self.live if w.ready]
        if not ready:
            return None
        victim = rng.choice(ready)
        pids = session_pids(victim.pid)
        at = time.time()
        victim.kill()
        self.workers.remove(victim)
        self.killed.append(Kill(victim.pid, pids, at, victim.log_path))
        self.fill()
        return victim

    def reap(self) -> list[Exit]:
        """Workers that exited on their own since the last look; each is replaced."""
        gone = [w for w in self.workers if not w.alive]
        for worker in gone:
            self.workers.remove(worker)
            self.exits.append(Exit(worker.pid, worker.poll(), worker.log_tail()))
        self.fill()
        return [self.exits[-i] for i in range(len(gone), 0, -1)]

    def stop_all(self, timeout: float = 30.0) -> dict[int, int | None]:
        """SIGTERM every worker and wait; their exit codes by pid."""
        codes: dict[int, int | None] = {}
        for worker in self.workers:
            if worker.alive:
                worker.signal(signal.SIGTERM)
        for worker in self.workers:
            codes[worker.pid] = worker.stop(timeout)
        self.workers = []
        return codes

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers = []
