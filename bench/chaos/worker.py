"""A chaos worker process: ``python -m bench.chaos.worker``, an SQS or a Celery worker.

``CHAOS_WORKER`` holds JSON: ``settings`` (Settings fields), and for Celery
``transport_options``, ``concurrency`` and ``hostname``. The tools' tables come from
``CHAOS_FX`` (see ``bench.chaos.tools``).
"""

from __future__ import annotations

import json
import logging
import os
import sys

from bench.chaos.tools import env_registry
from intentq.config import Settings

CONFIG_ENV = "CHAOS_WORKER"


def main() -> int:
    config = json.loads(os.environ[CONFIG_ENV])
    settings = Settings(**config["settings"])
    registry = env_registry()
    if settings.transport == "sqs":
        from intentq.consumers.sqs.service import run_worker

        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
        )
        return run_worker(settings, registry)

    from intentq.consumers.celery import create_app
    from intentq.consumers.celery import run_worker as run_celery

    app = create_app(settings, registry, broker_transport_options=config.get("transport_options"))
    return run_celery(
        settings,
        registry,
        concurrency=int(config.get("concurrency", 2)),
        app=app,
        hostname=config.get("hostname"),
        loglevel="INFO",
    )


if __name__ == "__main__":
    sys.exit(main())
