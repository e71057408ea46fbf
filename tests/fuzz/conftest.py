"""One real SQS worker process for the whole module, fed arbitrary bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bench.chaos.world import WorkerProc
from bench.chaos.zygote import Zygote
from tests.chaos.harness import Rig, rig
from tests.support.services import SqsServer


@pytest.fixture(scope="module")
def fuzz_rig(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, sqs_server: SqsServer
) -> Iterator[tuple[Rig, WorkerProc, str]]:
    """A worker process on a queue of its own, PostgreSQL store and DLQ; and the queue URL."""
    workdir = tmp_path_factory.mktemp("fuzz")
    unique = uuid.uuid4().hex[:12]
    queue = sqs_server.new_queue(f"fuzz-{unique}")
    with (
        Zygote(workdir / "zygote.log") as zygote,
        rig(zygote, pg_url, unique, workdir, queue, sqs_server, lease=30) as world,
    ):
        worker = world.spawn()
        yield world, worker, queue
