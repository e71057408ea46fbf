"""Databases as intentq 0.1 left them, and intentq 0.1 itself to run beside today's code.

``legacy.py`` loads the 0.1 fixtures (DDL and rows under ``fixtures/``); ``intentq_0_1``
is the real 0.1 package, taken from this repository's history (commit 0577eb5) and run by
this virtual environment's Python in processes of its own.
"""

from __future__ import annotations

import compileall
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE_0_1 = "0577eb5"  # the last commit of intentq 0.1


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own: the default table names are free in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intentq.db'}"
        return
    import psycopg

    request.getfixturevalue("pg_url")  # PostgreSQL answers, or the test fails saying how
    name = f"intentq_upgrade_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def intentq_0_1() -> Path:
    """A directory holding intentq 0.1's package, for ``PYTHONPATH``: extracted from git once
    and kept under .cache/ with its bytecode, so later runs start its processes at once."""
    where = ROOT / ".cache" / f"intentq-0.1-{RELEASE_0_1}"
    if (where / "intentq" / "dedup" / "sql_schema.py").exists():  # 0.1's layout
        return where
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", RELEASE_0_1, "intentq"],
        capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode != 0:
        pytest.fail(
            f"the upgrade tests run intentq 0.1 from this repository's history (commit "
            f"{RELEASE_0_1}); fetch it with: git fetch --unshallow "
            f"({archive.stderr.decode(errors='replace').strip()})"
        )
    where.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="intentq-0.1-", dir=where.parent))
    subprocess.run(["tar", "-x", "-C", str(building)], input=archive.stdout, check=True)
    compileall.compile_dir(building, quiet=1)
    try:
        building.rename(where)  # whole or not at all: a parallel run may have won
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return where
