"""Relaying to Celery (RabbitMQ): one task message per committed intent, its id the intent's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from intentq.consumers.celery import create_app
from intentq.outbox import Relay
from intentq.registry import Registry
from tests.outbox.conftest import Place
from tests.outbox.test_relay import write


def test_committed_intents_become_one_celery_task_each(
    make_place: Callable[..., Place], amqp_url: str, unique: str
) -> None:
    queue = f"outbox-{unique}"
    place = make_place("postgresql", transport="celery", broker_url=amqp_url, celery_queue=queue)
    keys = write(place, 5)
    with Relay(place.settings) as relay:
        assert relay.drain().sent == 5
    app = create_app(place.settings, Registry())
    got: list[tuple[str, Any, str]] = []
    try:
        with app.connection_for_read() as conn:
            simple = conn.SimpleQueue(queue)
            try:
                for _ in range(5):
                    message = simple.get(timeout=5)
                    message.ack()
                    args, _kwargs, _embed = message.payload
                    got.append((message.headers["task"], args[0], message.headers["id"]))
                assert simple.qsize() == 0  # nothing more: each row sent once
            finally:
                simple.close()
            conn.default_channel.queue_delete(queue)
    finally:
        app.close()
    assert sorted(envelope["key"] for _, envelope, _ in got) == sorted(keys)
    assert all(task == "intentq.book_slot" for task, _, _ in got)
    assert all(task_id == envelope["intent_id"] for _, envelope, task_id in got)
