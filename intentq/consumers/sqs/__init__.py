"""The Amazon SQS consumer: ``SqsWorker`` and ``run_worker`` for ``intentq worker``.

The worker long-polls one queue, claims each batch in one store call, runs tools on a
bounded pool with their visibility kept alive by the heartbeat, and settles messages with
batched deletes and visibility changes. SIGTERM or SIGINT stops receiving, lets running
tools finish within ``shutdown_grace`` and gives back what has not started; a second
signal stops waiting for them.
"""

from __future__ import annotations

from intentq.consumers.sqs.receiver import Received, SqsQueue
from intentq.consumers.sqs.service import (
    EXIT_ABANDONED,
    EXIT_ERROR,
    EXIT_OK,
    run_worker,
    serve,
    start_worker,
    stop_on_signals,
)
from intentq.consumers.sqs.worker import SqsWorker

__all__ = [
    "EXIT_ABANDONED",
    "EXIT_ERROR",
    "EXIT_OK",
    "Received",
    "SqsQueue",
    "SqsWorker",
    "run_worker",
    "serve",
    "start_worker",
    "stop_on_signals",
]
