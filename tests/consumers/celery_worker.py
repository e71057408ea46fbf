"""A Celery worker process for the contract: ``python -m tests.consumers.celery_worker``.

Configured as ``tests.celery.worker_entry`` is (JSON in ``CELERYTEST_WORKER``), serving the
contract's tools.
"""

from __future__ import annotations

import json
import os
import sys

from intentq.config import Settings
from intentq.consumers.celery import create_app, run_worker
from tests.celery.worker_entry import CONFIG
from tests.consumers.tools import registry


def main() -> int:
    config = json.loads(os.environ[CONFIG])
    settings = Settings(**config["settings"])
    app = create_app(
        settings,
        registry,
        result_backend=config["result_backend"],
        broker_transport_options=config["transport_options"],
    )
    return run_worker(
        settings, registry, concurrency=config["concurrency"], app=app,
        hostname=config["hostname"],
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
