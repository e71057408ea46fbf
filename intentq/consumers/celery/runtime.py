"""What a Celery app configured by intentq carries: settings, tools, and per-process resources.

The store, the dead-letter store and the executor are opened lazily in the process that first
uses them. A prefork worker forks its pool children after start (and again whenever a child
dies), so nothing is opened at import or app creation, and a child never reuses what its
parent opened.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from intentq.config.settings import Settings
from intentq.connections import open_dlq_for, open_store_for
from intentq.dedup.base import DedupStore
from intentq.dlq.base import DeadLetterStore
from intentq.errors import ConfigError
from intentq.executor import Executor
from intentq.observe.base import Observer
from intentq.policy import Policy
from intentq.registry import Registry

log = logging.getLogger("intentq.celery")

# The attribute of a Celery app that holds its ``Runtime``.
APP_ATTRIBUTE = "intentq_runtime"


class Runtime:
    """Settings, registry and policy of one app; store, DLQ and executor per process."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        dedup: DedupStore | None = None,
        dlq: DeadLetterStore | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.policy = Policy.from_settings(settings)
        self.observer = observer
        self._given_store = dedup
        self._given_dlq = dlq
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._executor: Executor | None = None
        self._dlq: DeadLetterStore | None = None
        self._opened: list[Any] = []
        # What a parent process opened stays referenced and untouched in its children:
        # finalising an inherited database connection would end the parent's session too.
        self._inherited: list[Any] = []
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))

    def _for_this_process(self) -> None:
        pid = os.getpid()
        if self._pid != pid:
            self._inherited.extend(self._opened)
            self._opened = []
            self._pid, self._executor, self._dlq = pid, None, None

    def executor(self) -> Executor:
        """This process's executor, opening the store on first use."""
        # Asked on every task call: once this process has its executor, no lock is needed
        # (a forked child still sees its parent's pid here, so it takes the slow path).
        executor = self._executor
        if executor is not None and self._pid == os.getpid():
            return executor
        with self._lock:
            self._for_this_process()
            if self._executor is None:
                store = self._given_store
                if store is None:
                    store = open_store_for(self.settings)
                    self._opened.append(store)
                self._executor = Executor(self.registry, store, self.policy, observer=self.observer)
            return self._executor

    def dead_letters(self) -> DeadLetterStore:
        """This process's dead-letter store, opened on first use."""
        with self._lock:
            self._for_this_process()
            if self._dlq is None:
                dlq = self._given_dlq
                if dlq is None:
                    dlq = open_dlq_for(self.settings)
                    self._opened.append(dlq)
                self._dlq = dlq
            return self._dlq

    def close(self) -> None:
        """Close what this process opened (objects passed in are the caller's to close)."""
        with self._lock:
            self._for_this_process()
            executor, opened = self._executor, self._opened
            self._executor, self._dlq, self._opened = None, None, []
        if executor is not None:
            executor.heartbeat.stop()
        for resource in opened:
            try:
                resource.close()
            except Exception:
                log.warning("closing %r failed", resource, exc_info=True)


def _after_fork(ref: weakref.ref[Runtime]) -> None:
    runtime = ref()
    if runtime is not None:
        # A lock held by another thread at fork time would stay held forever in the child.
        runtime._lock = threading.Lock()


def runtime_of(app: Any) -> Runtime:
    """The ``Runtime`` that ``configure_app`` attached to ``app``."""
    runtime = getattr(app, APP_ATTRIBUTE, None)
    if not isinstance(runtime, Runtime):
        raise ConfigError(
            "this Celery app is not set up for intentq: build it with create_app(settings, "
            "registry) or call configure_app(app, settings) first"
        )
    return runtime
