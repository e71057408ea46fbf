"""A model that answers from a recording: each call returns the next response in a JSON file.

The agent loops call it where they would call the vendor's API, so they run without a
network or an API key, the same way every time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).with_name("recorded")


class Recorded:
    """``next(messages)``: the next recorded response, as the vendor's JSON."""

    def __init__(self, name: str) -> None:
        self.responses: list[dict[str, Any]] = json.loads((RECORDED / name).read_text())
        self.asked: list[list[dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        self.asked.append(list(messages))
        return self.responses[len(self.asked) - 1]
