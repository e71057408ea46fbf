"""A replay whose send kills its own process the moment a body is sent, before any mark.

Run as ``python -m tests.dlq.crash_replay DLQ_URL OUTBOX``: each sent body is appended to
OUTBOX (one JSON body a line, flushed to disk) and then the process SIGKILLs itself.
"""

from __future__ import annotations

import os
import signal
import sys

from intentq.dlq import DeadLetter, open_dlq
from intentq.dlq.replay import replay


def main(dlq_url: str, outbox: str) -> None:
    dlq = open_dlq(dlq_url)

    def send(letter: DeadLetter, to: str | None) -> None:
        with open(outbox, "ab") as f:
            f.write(letter.body + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    replay(dlq, None, dlq.iter(), send)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
