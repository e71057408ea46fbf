"""The SQS worker: run it until SIGTERM, or drive it from your own code."""

from __future__ import annotations

import threading

from intentq.config import Settings
from intentq.consumers.sqs import SqsWorker, run_worker
from myapp.tools import registry


def main() -> int:
    settings = Settings.load(transport="sqs")
    return run_worker(settings, registry)  # blocks; SIGTERM/SIGINT stop it; exit code 0, 1, 2


def start_in_thread(settings: Settings) -> tuple[SqsWorker, threading.Thread]:
    worker = SqsWorker(settings, registry)  # or drive it yourself
    thread = threading.Thread(target=worker.run)  # runs until worker.stop()
    thread.start()
    return worker, thread  # later: worker.stop(); thread.join(); worker.close()


if __name__ == "__main__":
    raise SystemExit(main())
