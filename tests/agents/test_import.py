"""Importing intentq.agents needs no vendor SDK and loads none."""

from __future__ import annotations

import subprocess
import sys

import intentq.agents

CHECK = """
import sys
import intentq.agents
loaded = sorted({"openai", "anthropic", "mcp"} & set(sys.modules))
assert not loaded, loaded
"""


def test_no_sdk_is_imported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr


def test_every_public_name_exists() -> None:
    for name in intentq.agents.__all__:
        assert hasattr(intentq.agents, name), name
