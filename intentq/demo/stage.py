"""The demo's stage: settings, store, DLQ, the tools' database and a Celery worker in-process."""

from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intentq.config.settings import Settings
from intentq.connections import open_dlq_for, open_store_for
from intentq.dedup.base import DedupStore
from intentq.demo.embedded import EmbeddedWorker
from intentq.demo.tools import World, build_registry
from intentq.dlq.base import DeadLetter, DeadLetterStore
from intentq.errors import IntentqError
from intentq.intent import Intent
from intentq.ops.init import init_resources

QUEUE = "intentq-demo"
# The demo's own files, named so that none is a file another command uses by default
# (``intentq.db``, ``intentq-broker.db``): a run replaces these and touches nothing else.
STORE_FILE = "demo-intentq.db"  # store and DLQ
BROKER_FILE = "demo-broker.db"
TOOLS_FILE = "demo-tools.db"
AGENT_FILE = "demo-agent.db"  # the agent's own database: its decisions and the outbox table
LOG_FILE = "demo.log"
DATABASES = (STORE_FILE, BROKER_FILE, TOOLS_FILE, AGENT_FILE)
SQLITE_SIDECARS = ("", "-journal", "-wal", "-shm")


def demo_settings(directory: Path) -> Settings:
    """The embedded default, in ``directory``, with retries quick enough to watch."""
    db = directory.resolve() / STORE_FILE
    return Settings(
        transport="celery",
        app=None,
        dedup_url=f"sqlite:///{db}",
        dlq_url=f"sqlite:///{db}",
        broker_url=f"sqla+sqlite:///{directory.resolve() / BROKER_FILE}",
        celery_queue=QUEUE,
        key_prefix="intentq",
        # A duplicate that finds its key busy comes back when the lease would run out: keep
        # it short so the story moves (the heartbeat extends it every lease/3 while a tool runs).
        lease=3.0,
        max_attempts=5,
        backoff_base=0.2,
        backoff_max=1.0,
        outbox_url=f"sqlite:///{directory.resolve() / AGENT_FILE}",
        # A relay killed mid-batch holds the table this long before the next one takes over.
        outbox_lease=1.0,
    )


def clear_previous_run(directory: Path) -> list[str]:
    """Remove the databases an earlier demo run left in ``directory``; returns their names.

    Only the demo's own file names (and SQLite's journal files next to them) are removed, so
    every run starts from empty tables and its checks count that run alone.
    """
    removed = []
    for name in DATABASES:
        for path in (directory / f"{name}{suffix}" for suffix in SQLITE_SIDECARS):
            if not path.exists() and not path.is_symlink():
                continue
            if path.is_dir() and not path.is_symlink():
                raise IntentqError(f"{path} is a folder, not a demo file: pick another --dir")
            path.unlink()
            removed.append(path.name)
    return removed


@contextmanager
def logs_in(directory: Path) -> Iterator[Path]:
    """Send the log to ``directory/demo.log`` while the demo runs: its screen is its tables.

    An earlier run's log is replaced, like its databases.
    """
    path = directory / LOG_FILE
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    with warnings.catch_warnings():
        # kombu's SQLAlchemy broker uses a loader strategy SQLAlchemy 2.1 deprecates.
        warnings.filterwarnings("ignore", message=r".*noload.*")
        try:
            yield path
        finally:
            logging.captureWarnings(False)
            root.handlers[:], level = saved
            root.setLevel(level)
            handler.close()


@dataclass
class Stage:
    """Everything the story acts on; ``close()`` stops the worker and closes the stores."""

    directory: Path
    settings: Settings
    world: World
    store: DedupStore
    dlq: DeadLetterStore
    app: Any = None
    worker: EmbeddedWorker | None = None
    checked: Any = None  # a producer that validates against the tools first deployed
    plain: Any = None  # an old agent's producer: checks nothing before sending
    replaced: list[str] = field(default_factory=list)  # files an earlier run left, removed
    handled: Counter[tuple[str, str]] = field(default_factory=Counter)
    answered: Counter[tuple[str, str]] = field(default_factory=Counter)  # with a result
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        from celery import signals

        signals.task_postrun.connect(self._on_postrun, weak=False)

    def _on_postrun(self, *, args: Any = None, state: str | None = None, **_: Any) -> None:
        """Count deliveries the worker finished with (a retry is not finished yet)."""
        if state not in ("SUCCESS", "FAILURE") or not args or not isinstance(args[0], dict):
            return
        tool, key = args[0].get("tool"), args[0].get("key")
        if isinstance(tool, str) and isinstance(key, str):
            with self._lock:
                self.handled[(tool, key)] += 1
                self.answered[(tool, key)] += state == "SUCCESS"

    def counts(self, tool: str, key: str) -> tuple[int, int]:
        """Deliveries of ``(tool, key)`` the worker finished with, and those with a result."""
        with self._lock:
            return self.handled[(tool, key)], self.answered[(tool, key)]

    @classmethod
    def open(cls, directory: Path) -> Stage:
        """A fresh stage in ``directory``: an earlier run's databases are replaced."""
        replaced = clear_previous_run(directory)
        settings = demo_settings(directory)
        init_resources(settings)  # what `intentq init` does: the store's and the DLQ's tables
        store = open_store_for(settings)
        dlq = open_dlq_for(settings)
        world = World(directory / TOOLS_FILE)
        world.lease_probe = lambda tool, key: _lease_until(store, tool, key)
        return cls(directory, settings, world, store, dlq, replaced=replaced)

    def deploy(self, *, fixed: bool) -> None:
        """(Re)start the worker with the tools as first deployed, or with the fix."""
        from intentq.consumers.celery import create_app
        from intentq.producer import Producer

        self.stop_worker()
        registry = build_registry(self.world, fixed=fixed)
        self.app = create_app(self.settings, registry, dedup=self.store, dlq=self.dlq)
        first = build_registry(self.world, fixed=False)
        self.checked = Producer(self.settings, first, celery_app=self.app)
        self.plain = Producer(self.settings, None, celery_app=self.app)
        self.worker = EmbeddedWorker(self.app, concurrency=4)
        self.worker.start()

    def stop_worker(self) -> None:
        """Stop the worker and let go of its app."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.app is not None:
            self.app.close()
            self.app = None

    def send(self, intent: Intent) -> None:
        """Deliver ``intent`` as it is (same intent id): what a broker's redelivery looks like."""
        self.plain.send_intent(intent)

    def resend(self, letter: DeadLetter, queue: str | None) -> None:
        """Replay's way out: the letter's original bytes, to its queue."""
        self.plain.send_raw(letter.body, queue or self.settings.celery_queue)

    def close(self) -> None:
        from celery import signals

        try:
            self.stop_worker()
        finally:
            signals.task_postrun.disconnect(self._on_postrun)
            self.store.close()
            self.dlq.close()


def _lease_until(store: DedupStore, tool: str, key: str) -> float | None:
    record = store.get(tool, key)
    return record.lease_until if record is not None else None
