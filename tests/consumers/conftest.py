"""The side-effect table every transport's contract counts in (one per module)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.celery.conftest import Effects, pg_dsn
from tests.celery.tools import FX_DSN, FX_TABLE


@pytest.fixture(scope="module")
def fx(pg_url: str) -> Iterator[Effects]:
    """A PostgreSQL table of this module's own, without a unique constraint."""
    table = Effects(pg_dsn(pg_url), f"consumer_fx_{os.urandom(6).hex()}")
    table.create()
    try:
        yield table
    finally:
        table.drop()


def fx_env(fx: Effects) -> dict[str, str]:
    """The variables ``tests.celery.tools.note`` finds the table by."""
    return {FX_DSN: fx.dsn, FX_TABLE: fx.table}
