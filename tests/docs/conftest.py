"""The documentation's examples, imported fresh from docs/examples for each test."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _example_modules() -> list[str]:
    """Names of modules imported from docs/examples (``myapp`` and the flat files)."""
    names = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and Path(origin).resolve().is_relative_to(EXAMPLES):
            names.append(name)
    return names


@pytest.fixture
def example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[str], ModuleType]]:
    """Import an example by module name, as a user would with docs/examples on the path.

    Each test gets new module objects (nothing carries over from another test), runs in its
    own working directory (no intentq.toml, SQLite files land there) and starts with no
    ``INTENTQ_*`` variable set.
    """
    for name in os.environ:
        if name.upper().startswith("INTENTQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    for name in _example_modules():
        del sys.modules[name]

    yield importlib.import_module

    for name in _example_modules():
        del sys.modules[name]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set ``INTENTQ_<NAME>`` variables for the test: ``env(dedup_url="memory://")``."""

    def set_all(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"INTENTQ_{name.upper()}", str(value))

    return set_all
