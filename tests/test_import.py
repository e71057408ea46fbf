"""Importing intentq does no I/O and reads no environment."""

from __future__ import annotations

import subprocess
import sys

# Runs in a fresh interpreter: count sockets connected, INTENTQ_* variables read and
# non-code files opened while `import intentq` runs.
PROBE = r"""
import builtins, os, socket, sys
connects, reads, opened = [], [], []
real_connect = socket.socket.connect
socket.socket.connect = lambda self, *a: (connects.append(a), real_connect(self, *a))[1]
real_getitem = type(os.environ).__getitem__
def getitem(self, key):
    if str(key).startswith("INTENTQ"):
        reads.append(key)
    return real_getitem(self, key)
type(os.environ).__getitem__ = getitem
real_open = builtins.open
builtins.open = lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1]
import intentq
data = [f for f in opened if not f.endswith((".py", ".pyc", ".so", ".pth", ".typed"))]
print(len(connects), len(reads), data)
print([m for m in ("celery", "boto3", "redis", "sqlalchemy") if m in sys.modules])
"""


def test_import_does_no_io_and_reads_no_environment() -> None:
    env = {"INTENTQ_DEDUP_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin"}
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    connects_reads_files, heavy_modules = run.stdout.splitlines()
    assert connects_reads_files == "0 0 []"
    assert heavy_modules == "[]"
