"""intentq on Celery: the app, and two ways to send an intent to its workers."""

from __future__ import annotations

from typing import Any

from intentq import Intent, Producer
from intentq.config import Settings
from intentq.consumers.celery import create_app, publish
from myapp.tools import registry


def build() -> tuple[Settings, Any]:
    settings = Settings.load()  # INTENTQ_* variables, intentq.toml
    app = create_app(settings, registry)  # a new Celery app; nothing connects yet
    return settings, app


def send(settings: Settings, app: Any, key: str) -> None:
    with Producer(settings, registry, celery_app=app) as producer:  # INTENTQ_TRANSPORT=celery
        producer.enqueue("book_slot", {"slot": "15:00"}, key=key)

    publish(app, Intent.create("book_slot", {"slot": "15:00"}, key=key), settings.celery_queue)
