"""A filtered replay or purge that SIGKILLs its own process part way through.

    python -m tests.dlq.resume_run replay DLQ_URL TABLE TOOL AS_OF OUTBOX KILL_AFTER [keep]
    python -m tests.dlq.resume_run purge DLQ_URL TABLE TOOL BATCH KILL_AFTER

replay: letters of TOOL as of AS_OF (ISO); each sent body is appended to OUTBOX (flushed to
disk), and the process SIGKILLs itself right after the KILL_AFTER-th send, before that letter
is removed or marked. purge: letters of TOOL in batches of BATCH; the process SIGKILLs itself
once KILL_AFTER batches are done. KILL_AFTER 0 runs to the end.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime

from intentq.dlq import DeadLetter, LetterFilter, open_dlq
from intentq.dlq.purge import purge
from intentq.dlq.replay import as_of, replay


def run_replay(
    url: str, table: str, tool: str, when: str, outbox: str, kill: int, keep: bool
) -> None:
    dlq = open_dlq(url, table_name=table)
    sent = 0

    def send(letter: DeadLetter, to: str | None) -> None:
        nonlocal sent
        with open(outbox, "ab") as f:
            f.write(letter.id.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        sent += 1
        if sent == kill:
            os.kill(os.getpid(), signal.SIGKILL)

    f = as_of(LetterFilter(tool=tool), datetime.fromisoformat(when))
    replay(dlq, None, dlq.iter(f, page_size=25), send, keep=keep, problems_only=True)


def run_purge(url: str, table: str, tool: str, batch: int, kill: int) -> None:
    dlq = open_dlq(url, table_name=table)
    batches = 0

    def progress(deleted: int) -> None:
        nonlocal batches
        batches += 1
        print(deleted, flush=True)
        if batches == kill:
            os.kill(os.getpid(), signal.SIGKILL)

    purge(dlq, all_letters=True, filter=LetterFilter(tool=tool), batch_size=batch,
          on_progress=progress)  # fmt: skip


if __name__ == "__main__":
    what, url, table, tool, *rest = sys.argv[1:]
    if what == "replay":
        when, outbox, kill, *flags = rest
        run_replay(url, table, tool, when, outbox, int(kill), "keep" in flags)
    else:
        run_purge(url, table, tool, int(rest[0]), int(rest[1]))
