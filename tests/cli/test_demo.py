"""``intentq demo`` as a user runs it: no configuration, no servers, one process, exit 0."""

from __future__ import annotations

import os
import re
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


def test_demo_runs_again_on_the_same_folder_and_counts_only_that_run(tmp_path: Path) -> None:
    folder = tmp_path / "demo-run"
    folder.mkdir()
    # What a user may keep there: the default store's file name, and anything else.
    mine = {"intentq.db": b"not the demo's", "notes.txt": b"keep me", "demo-notes.db": b"mine"}
    for name, data in mine.items():
        (folder / name).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTQ_")}
    env["PYTHONPATH"] = str(ROOT)
    outs, logs = [], []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "intentq.cli", "demo", "--dir", str(folder)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "all checks passed" in done.stdout and "FAIL" not in done.stdout
        outs.append(done.stdout)
        logs.append((folder / "demo.log").read_text())
    assert "removed an earlier run's" not in outs[0]
    assert "removed an earlier run's demo-intentq.db" in outs[1]
    # The second run's checks and tables count that run alone: one row per booking.
    assert "09:00 alice x1, 10:00 bob x1, 11:00 carol x1" in outs[1]
    assert " x2" not in outs[1]
    for name, data in mine.items():
        assert (folder / name).read_bytes() == data
    first_key = re.search(r"sent again under key (alice-0900-[0-9a-f]+)", outs[0])
    second_key = re.search(r"sent again under key (alice-0900-[0-9a-f]+)", outs[1])
    assert first_key and second_key and first_key[1] != second_key[1]  # no key reused
    assert logs[0].splitlines()[0] not in logs[1]  # the log is the second run's alone
