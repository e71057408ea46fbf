"""The two ways intents travel in a chaos run: SQS on ministack, Celery on a Redis broker.

Each side builds the workers' settings, sends the plan's messages through intentq's own
``Producer``, and reports the backlog: messages waiting and messages held by workers.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from bench.chaos.plan import Message
from bench.chaos.world import RedisServer
from intentq import Producer
from intentq.config import Settings

# A Celery message a killed worker held comes back after this many seconds, and the
# broker looks for such messages every second.
CELERY_VISIBILITY = 5
CELERY_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": CELERY_VISIBILITY,
    "unacked_restore_interval": 1,
}
CELERY_CONCURRENCY = 2
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
# Celery logs "[<time>: INFO/MainProcess] Task intentq.effect[<task id>] received" once the
# broker handed a message over; then the outcome: succeeded, raised, ignored, rejected, or
# retry (a new message under the same task id was sent).
_EVENT = re.compile(
    rb"^\[([0-9-]+ [0-9:,]+): [^\]]*\] Task \S+\[([0-9a-f-]{36})\] "
    rb"(received|retry|succeeded|raised|ignored|rejected)",
    re.M,
)


class Transport(Protocol):
    name: str
    ready_marker: bytes
    producer: Producer

    def worker_settings(self) -> dict[str, Any]: ...

    def worker_config(self, settings: dict[str, Any], index: int) -> dict[str, Any]: ...

    def send(self, messages: Sequence[Message]) -> None: ...

    def backlog(self) -> tuple[int, int]: ...

    def waiting(self) -> int: ...

    def received(self, killed_logs: set[Path]) -> set[str] | None: ...

    def close(self) -> None: ...


def _send(producer: Producer, messages: Sequence[Message]) -> None:
    intents = [m.intent for m in messages if m.intent is not None]
    if intents:
        producer.enqueue_many(intents)
    for message in messages:
        if message.intent is None:
            producer.send_raw(message.raw)


class SqsTransport:
    """A queue of the run's own on a local SQS server (started here unless one is given)."""

    name = "sqs"
    ready_marker = b"consuming "

    def __init__(self, workdir: Path, run_id: str, endpoint_url: str | None, concurrency: int):
        from tests.support.net import free_port
        from tests.support.services import SqsServer

        self.server: SqsServer | None = None
        if endpoint_url is None:
            self.server = SqsServer(free_port(), workdir / "ministack.log")
            self.server.start()
            endpoint_url = self.server.endpoint_url
        self.endpoint_url = endpoint_url
        self.concurrency = concurrency
        settings = Settings(transport="sqs", sqs_endpoint_url=endpoint_url)
        from intentq.connections import sqs_client_for

        self.client = sqs_client_for(settings)
        self.url = self.client.create_queue(QueueName=f"chaos-{run_id}")["QueueUrl"]
        self.producer = Producer(
            Settings(transport="sqs", sqs_endpoint_url=endpoint_url, sqs_queue=self.url),
            sqs_client=self.client,
        )

    def worker_settings(self) -> dict[str, Any]:
        return {
            "transport": "sqs",
            "sqs_queue": self.url,
            "sqs_endpoint_url": self.endpoint_url,
            # Short long-polls: a killed worker must not leave a poll holding messages.
            "sqs_wait_seconds": 1,
            "concurrency": self.concurrency,
            "shutdown_grace": 10,
        }

    def worker_config(self, settings: dict[str, Any], index: int) -> dict[str, Any]:
        return {"settings": settings}

    def send(self, messages: Sequence[Message]) -> None:
        _send(self.producer, messages)

    def backlog(self) -> tuple[int, int]:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        waiting = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesDelayed", 0)
        )
        return waiting, int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))

    def waiting(self) -> int:
        return self.backlog()[0]

    def received(self, killed_logs: set[Path]) -> set[str] | None:
        """SQS keeps what it delivered until deleted: it loses nothing on a worker's death."""
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the server may be gone, and the queue with it
            self.client.delete_queue(QueueUrl=self.url)
        self.producer.close()
        self.client.close()
        if self.server is not None:
            self.server.stop()


class _RedisBroker:
    """A redis-server of the run's own (never broken: the chaos is in workers and the store).

    kombu's Redis transport pops a message (BRPOP) and only then records it as unacked: a
    worker SIGKILLed in between loses that message (the sequence is shown in celery/celery#7950).
    """

    def __init__(self, workdir: Path) -> None:
        import redis

        self.server = RedisServer(workdir, durable=False, name="broker")
        self.server.start()
        self.url = self.server.url(0)
        self.client = redis.Redis.from_url(self.url)

    def transport_options(self) -> dict[str, Any]:
        return CELERY_TRANSPORT_OPTIONS

    def waiting(self, queue: str) -> int:
        # A queue (and its priority sub-queues) are lists named after it.
        return sum(int(self.client.llen(k)) for k in self.client.scan_iter(f"{queue}*"))

    def backlog(self, queue: str) -> tuple[int, int]:
        # Delivered messages stay in the "unacked" hash until acknowledged.
        return self.waiting(queue), int(self.client.hlen("unacked"))

    def close(self, queue: str) -> None:
        self.client.close()
        self.server.stop(signal.SIGTERM)


class _RabbitBroker:
    """The local RabbitMQ; a killed worker's unacknowledged messages are requeued at once."""

    def __init__(self, url: str) -> None:
        self.url = url

    def transport_options(self) -> dict[str, Any]:
        return {}

    def _connection(self) -> Any:
        import kombu

        return cast(Any, kombu).Connection(self.url)

    def _declare(self, queue: str) -> int:
        with self._connection() as conn:
            channel = conn.default_channel
            try:
                return int(channel.queue_declare(queue, passive=True).message_count)
            except Exception:  # not declared yet: nothing sent, nothing waiting
                return 0

    def waiting(self, queue: str) -> int:
        return self._declare(queue)

    def backlog(self, queue: str) -> tuple[int, int]:
        # AMQP tells ready messages only; the held ones (prefetched, or waiting for a retry
        # countdown in a worker) are counted by the broker's own tool, when it can be run.
        try:
            out = subprocess.run(
                ["rabbitmqctl", "-q", "list_queues", "name", "messages_ready",
                 "messages_unacknowledged"],
                capture_output=True, text=True, check=True, timeout=60,
            ).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return self.waiting(queue), 0
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] == queue:
                return int(fields[1]), int(fields[2])
        return 0, 0

    def close(self, queue: str) -> None:
        with self._connection() as conn, contextlib.suppress(Exception):
            conn.default_channel.queue_delete(queue)


class CeleryTransport:
    """Celery on a Redis broker of the run's own, or on the local RabbitMQ."""

    name = "celery"
    ready_marker = b" ready."

    def __init__(self, workdir: Path, run_id: str, concurrency: int, broker: str) -> None:
        self.broker: _RedisBroker | _RabbitBroker
        if broker == "redis":
            self.broker = _RedisBroker(workdir)
        elif broker == "rabbitmq":
            self.broker = _RabbitBroker(RABBITMQ_URL)
        else:
            raise ValueError(f"unknown broker {broker!r}: use redis or rabbitmq")
        self.workdir = workdir
        self.queue = f"chaos-{run_id}"
        self.concurrency = concurrency
        settings = Settings(transport="celery", broker_url=self.broker.url, celery_queue=self.queue)
        self.producer = Producer(settings)

    def worker_settings(self) -> dict[str, Any]:
        return {
            "transport": "celery",
            "broker_url": self.broker.url,
            "celery_queue": self.queue,
            "concurrency": self.concurrency,
        }

    def worker_config(self, settings: dict[str, Any], index: int) -> dict[str, Any]:
        return {
            "settings": settings,
            "transport_options": self.broker.transport_options(),
            "concurrency": self.concurrency,
            "hostname": f"chaos{index}-{uuid.uuid4().hex[:6]}@%h",
        }

    def send(self, messages: Sequence[Message]) -> None:
        _send(self.producer, messages)

    def waiting(self) -> int:
        return self.broker.waiting(self.queue)

    def backlog(self) -> tuple[int, int]:
        return self.broker.backlog(self.queue)

    def received(self, killed_logs: set[Path]) -> set[str]:
        """Task ids the broker did not lose, by the workers' logs.

        The broker lost a task's message when the task's last event is a retry being sent
        (a new message under the same task id) with no delivery after it, or a delivery to
        a worker that was then SIGKILLed, never delivered again.
        """
        events: list[tuple[bytes, bytes, bytes, bool]] = []
        for log in self.workdir.glob("worker-*.log"):
            killed = log in killed_logs
            events += [(*e, killed) for e in _EVENT.findall(log.read_bytes())]
        last: dict[bytes, tuple[bytes, bool]] = {}
        for _, task_id, what, killed in sorted(events):
            last[task_id] = (what, killed)
        return {
            task_id.decode()
            for task_id, (what, killed) in last.items()
            if what != b"retry" and not (what == b"received" and killed)
        }

    def close(self) -> None:
        self.producer.close()
        self.broker.close(self.queue)


def make_transport(
    name: str,
    workdir: Path,
    run_id: str,
    sqs_endpoint: str | None,
    concurrency: int | None,
    broker: str = "redis",
) -> SqsTransport | CeleryTransport:
    if name == "sqs":
        return SqsTransport(workdir, run_id, sqs_endpoint, concurrency or 4)
    if name == "celery":
        return CeleryTransport(workdir, run_id, concurrency or CELERY_CONCURRENCY, broker)
    raise ValueError(f"unknown transport {name!r}: use sqs or celery")
