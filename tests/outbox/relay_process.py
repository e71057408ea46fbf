"""A relay process that stops dead between sending a batch and marking it.

``python -m tests.outbox.relay_process SETTINGS_JSON MARKER``: relays one batch; once the
broker has taken it, writes MARKER and waits to be SIGKILLed (the test does that).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from intentq.config.settings import Settings
from intentq.outbox import Relay
from intentq.outbox.claims import Marks
from intentq.outbox.table import OutboxRow


def main() -> None:
    settings = Settings(**json.loads(sys.argv[1]))
    marker = Path(sys.argv[2])
    relay = Relay(settings)
    send = relay.sender.send

    def send_then_hang(rows: list[OutboxRow]) -> Marks:
        marks = send(rows)
        marker.write_text(json.dumps(sorted(marks.sent)))
        while True:  # between sending and marking: the SIGKILL comes here
            time.sleep(1)

    relay.sender.send = send_then_hang  # type: ignore[method-assign]
    relay.relay_once()


if __name__ == "__main__":
    main()
