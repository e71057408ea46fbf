"""``python -m bench.chaos``: one chaos run (see ``bench/chaos/run.py``); with ``--outbox``,
the transactional outbox's (``bench/chaos/outbox.py``)."""

from __future__ import annotations

import sys

if "--outbox" in sys.argv[1:]:
    from bench.chaos.outbox import main
else:
    from bench.chaos.run import main

sys.exit(main())
