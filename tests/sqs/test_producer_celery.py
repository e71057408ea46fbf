"""With ``transport = "celery"`` the producer publishes through the Celery app, here on Redis."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from intentq import Intent, Producer, UnknownTool
from intentq.config import Settings
from intentq.errors import TransportUnavailable
from intentq.registry import Registry
from tests.support.net import free_port


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def _published(broker: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting in ``queue`` on the Redis broker, oldest first."""
    raw = broker.lrange(queue, 0, -1)
    return [json.loads(m) for m in reversed(raw)]  # type: ignore[union-attr]


def test_enqueue_publishes_the_tool_task_with_the_intent_id(
    redis_url: str, broker: redis.Redis, registry: Registry, unique: str
) -> None:
    queue = f"producer-{unique}"
    # Tracing off: the envelope exactly as enqueue returns it (traceparent: tests/observe)
    settings = Settings(
        transport="celery", broker_url=redis_url, celery_queue=queue, tracing=False
    )
    try:
        with Producer(settings, registry) as producer:
            intent = producer.enqueue("book", {"slot": "14:00"}, key="via-celery")
            with pytest.raises(UnknownTool):
                producer.enqueue("no_such_tool", {})
            replay = Intent.create("book", {"slot": "15:00"}, key="replayed").to_json()
            producer.send_raw(replay)
        first, second = _published(broker, queue)
    finally:
        broker.delete(queue)
    assert first["headers"]["task"] == "intentq.book"
    assert first["headers"]["id"] == intent.intent_id
    args, _, _ = json.loads(base64.b64decode(first["body"]))
    assert args == [intent.as_dict()]
    assert second["headers"]["task"] == "intentq.book"


def test_an_unreachable_broker_is_transport_unavailable(registry: Registry) -> None:
    settings = Settings(transport="celery", broker_url=f"redis://127.0.0.1:{free_port()}/0")
    with Producer(settings, registry) as producer, pytest.raises(TransportUnavailable):
        producer.enqueue("book", {"slot": "nowhere"})
