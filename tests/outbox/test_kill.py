"""A relay SIGKILLed between sending and marking: its rows are sent again, and a real worker
still runs each tool once (the key dedups the second message)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from intentq.connections import open_dlq, open_store
from intentq.consumers.sqs.worker import SqsWorker
from intentq.context import ToolContext
from intentq.outbox import Relay
from intentq.registry import Registry
from tests.outbox.conftest import Place
from tests.outbox.test_relay import write
from tests.support.net import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Slot(BaseModel):
    n: int


def test_a_relay_killed_between_send_and_mark_sends_again_and_the_tool_runs_once(
    place: Place, sqs: Any, tmp_path: Path
) -> None:
    keys = write(place, 4)
    place.settings = place.with_(outbox_lease=1.0)  # SQLite: the dead relay's lease runs out soon
    # Given a relay process that has handed its batch to SQS and not yet marked it
    marker = tmp_path / "sent"
    settings = json.loads(place.settings.model_dump_json())
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.relay_process", json.dumps(settings), str(marker)],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(marker.exists, timeout=30, what="the relay to send its batch")
        assert len(json.loads(marker.read_text())) == 4
        # When it is SIGKILLed there
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert place.states() == {"pending": 4}  # sent, never marked
    # Then the next relay (on SQLite once the dead one's lease ran out) sends them again
    with Relay(place.settings) as relay:
        deadline = time.monotonic() + 10
        while relay.drain().sent < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert place.states() == {"sent": 4}
    counts = sqs.get_queue_attributes(
        QueueUrl=place.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(counts["ApproximateNumberOfMessages"]) == 8  # every intent went out twice

    # And a real worker runs each tool once: the second message finds the key completed.
    runs: Counter[str] = Counter()
    registry = Registry()

    @registry.tool("book_slot", args=Slot)
    def book_slot(args: Slot, ctx: ToolContext) -> int:
        runs[ctx.key] += 1
        return args.n

    store, dlq = open_store("memory://"), open_dlq("memory://")
    worker = SqsWorker(
        place.with_(sqs_wait_seconds=1, concurrency=4), registry, store=store, dlq=dlq
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:

        def drained() -> bool:
            attributes = sqs.get_queue_attributes(
                QueueUrl=place.queue_url,
                AttributeNames=["ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]  # fmt: skip
            return sum(int(v) for v in attributes.values()) == 0

        wait_until(drained, timeout=30, what="the worker to take all 8 messages")
    finally:
        worker.stop()
        thread.join(15)
        store.close()
        dlq.close()
    assert runs == Counter({key: 1 for key in keys})
