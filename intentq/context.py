"""What a running tool is told about the intent it serves."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolContext:
    """Handed to every tool call next to its arguments.

    ``key`` is the idempotency key: pass it on as the ``Idempotency-Key`` of any API the tool
    calls, so the side effect downstream is deduplicated too. ``session`` is an SQLAlchemy
    session for tools registered with ``transactional=True`` on the SQL store: the tool's writes
    and the completion record commit together.
    """

    tool: str
    key: str
    intent_id: str
    attempt: int
    meta: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("intentq.tool"))
    session: Any = None
