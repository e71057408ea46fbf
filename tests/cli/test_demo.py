"""``intentq demo`` as a user runs it: no configuration, no servers, one process, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_passes_its_checks_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "intentq.cli", "demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "all checks passed" in out
    assert "FAIL" not in out
    for check in ("every booking exactly once", "dead-letter queue drained",
                  "slow tool ran once, its lease extended"):  # fmt: skip
        assert check in out
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # its files lived in a temporary folder
