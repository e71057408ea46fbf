"""Worker processes against real servers, for the chaos, fault and fuzz tests.

Workers are forked by a zygote (``bench.chaos.zygote``) that preloaded every module, so a
replacement consumes within a second; each is a real process in a session of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.tools import Effects
from bench.chaos.world import PgSchema, RedisServer, WorkerProc
from bench.chaos.zygote import Zygote
from intentq.dedup import DedupStore, open_store
from intentq.dlq import DeadLetterStore, open_dlq
from tests.support.services import SqsServer

SQS_READY = b"consuming "


@dataclass
class Rig:
    """One test's world: a schema (effects, DLQ), a store, a queue, and its workers."""

    zygote: Zygote
    schema: PgSchema
    fx: Effects
    store_url: str
    prefix: str
    workdir: Path
    settings: dict[str, Any]
    store: DedupStore
    dlq: DeadLetterStore
    workers: list[WorkerProc] = field(default_factory=list)

    def spawn(self, **overrides: Any) -> WorkerProc:
        """A worker process on the rig's queue; ``overrides`` change its settings."""
        config = {"settings": {**self.settings, **overrides}}
        log = self.workdir / f"worker-{len(self.workers)}.log"
        worker = WorkerProc(self.zygote, config, self.fx.env(), log, SQS_READY)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.kill()
        self.store.close()
        self.dlq.close()
        self.fx.close()


def sqs_settings(server: SqsServer | str, queue_url: str, **values: Any) -> dict[str, Any]:
    """Worker settings for a queue: short polls, so a stopped worker holds nothing."""
    endpoint = server if isinstance(server, str) else server.endpoint_url
    return {
        "transport": "sqs",
        "sqs_queue": queue_url,
        "sqs_endpoint_url": endpoint,
        "sqs_wait_seconds": 1,
        "concurrency": 4,
        "backoff_base": 0.1,
        "backoff_max": 1.0,
        "shutdown_grace": 10,
        **values,
    }


@contextlib.contextmanager
def rig(
    zygote: Zygote,
    pg_url: str,
    unique: str,
    workdir: Path,
    queue_url: str,
    endpoint: SqsServer | str,
    *,
    redis: RedisServer | None = None,
    transactional: bool = False,
    **settings: Any,
) -> Iterator[Rig]:
    """A rig whose store is ``redis`` if given, else PostgreSQL (in the test's schema)."""
    schema = PgSchema(pg_url, f"chaos_t_{unique}")
    schema.create()
    try:
        fx = Effects(schema.dsn, schema.name, transactional)
        fx.create()
        store_url = redis.url(0) if redis is not None else schema.url(f"chaos-store-{unique}")
        dlq_url = schema.url(f"chaos-dlq-{unique}")
        prefix = f"chaos-{unique}"
        store = open_store(store_url, prefix=prefix)
        store.create_schema()
        dlq = open_dlq(dlq_url)
        dlq.create_schema()
        values = sqs_settings(
            endpoint, queue_url, dedup_url=store_url, dlq_url=dlq_url, key_prefix=prefix,
            **settings,
        )  # fmt: skip
        world = Rig(zygote, schema, fx, store_url, prefix, workdir, values, store, dlq)
        try:
            yield world
        finally:
            world.close()
    finally:
        schema.drop()
