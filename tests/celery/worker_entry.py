"""``python -m tests.celery.worker_entry``: a real Celery worker for the tests.

``CELERYTEST_WORKER`` holds JSON: ``settings`` (Settings fields), ``result_backend``,
``transport_options``, ``concurrency``, ``pool`` and ``hostname``.
"""

from __future__ import annotations

import json
import os
import sys

from intentq.config import Settings
from intentq.consumers.celery import create_app, run_worker
from tests.celery.tools import define_plain_tasks, registry

CONFIG = "CELERYTEST_WORKER"


def main() -> int:
    config = json.loads(os.environ[CONFIG])
    settings = Settings(**config["settings"])
    app = create_app(
        settings,
        registry,
        result_backend=config.get("result_backend"),
        broker_transport_options=config.get("transport_options"),
    )
    define_plain_tasks(app)
    return run_worker(
        settings,
        registry,
        concurrency=config.get("concurrency", 2),
        pool=config.get("pool", "prefork"),
        app=app,
        hostname=config.get("hostname"),
    )


if __name__ == "__main__":
    sys.exit(main())
