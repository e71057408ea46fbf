"""``python -m bench.chaos``: one chaos run (see ``bench/chaos/run.py``)."""

from __future__ import annotations

import sys

from bench.chaos.run import main

sys.exit(main())
