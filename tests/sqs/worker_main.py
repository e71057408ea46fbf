"""A worker process for the SQS tests: ``python -m tests.sqs.worker_main``.

Settings come from ``INTENTQ_*``; the tools' effects table from ``SQS_TEST_EFFECTS_*``.
"""

from __future__ import annotations

import logging
import sys

from intentq.config import Settings
from intentq.consumers.sqs.service import run_worker
from tests.sqs.tools import env_registry


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    return run_worker(Settings.load(), env_registry())


if __name__ == "__main__":
    sys.exit(main())
