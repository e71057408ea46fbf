"""A plain Celery task made idempotent: at most once per ``idempotency_key``."""

from __future__ import annotations

from typing import Any

from celery import Celery

from intentq.config import Settings
from intentq.consumers.celery import IdempotentTask, configure_app

settings = Settings.load()
app = Celery("shop", broker=settings.broker_url)
configure_app(app, settings)  # or build it with create_app(settings, registry)
charges: list[str] = []  # stands in for the payment provider


def charge_card(order_id: str, amount: int, idempotency_key: str | None) -> dict[str, Any]:
    charges.append(order_id)  # your payment API, called with the same Idempotency-Key
    return {"order": order_id, "amount": amount, "idempotency_key": idempotency_key}


@app.task(base=IdempotentTask, shared=False)  # this app only: no task in every other app
def charge(order_id: str, amount: int, idempotency_key: str | None = None) -> dict[str, Any]:
    return charge_card(order_id, amount, idempotency_key=idempotency_key)


if __name__ == "__main__":
    charge.delay("o-1", 500, idempotency_key="pay-o-1")  # twice: charged once, same result
    charge.delay("o-1", 500, idempotency_key="pay-o-1")
