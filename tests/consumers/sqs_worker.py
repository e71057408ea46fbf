"""An SQS worker process for the contract: ``python -m tests.consumers.sqs_worker``.

Settings come from ``INTENTQ_*``, the side-effect table from ``tests.celery.tools``'
variables. Logs are JSON lines, so the decision of every delivery can be read back.
"""

from __future__ import annotations

import logging
import os
import sys

from intentq.config import Settings
from intentq.consumers.sqs import serve, start_worker
from intentq.observe.logs import use_json
from tests.consumers.tools import registry


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    use_json()
    worker = start_worker(Settings.load(), registry)
    logging.getLogger("tests.consumers").info("worker %d ready.", os.getpid())
    return serve(worker)


if __name__ == "__main__":
    sys.exit(main())
