"""intentq: side-effecting tool calls that are safe to retry.

Importing this package does no I/O and reads no environment; drivers load where used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from intentq.context import ToolContext
from intentq.errors import (
    ConfigError,
    DedupError,
    DLQError,
    IntentqError,
    InvalidArgs,
    InvalidIntent,
    LeaseLost,
    RegistryError,
    Retry,
    StoreUnavailable,
    TransientError,
    UnknownTool,
)
from intentq.intent import Intent, key_for_tool_call, new_intent_id
from intentq.registry import Registry, ToolSpec

if TYPE_CHECKING:
    from intentq.producer import Producer

__version__ = "0.1.0"

__all__ = [
    # tools and intents
    "Intent",
    "Registry",
    "ToolContext",
    "ToolSpec",
    "key_for_tool_call",
    "new_intent_id",
    # sending
    "Producer",
    # errors
    "ConfigError",
    "DLQError",
    "DedupError",
    "IntentqError",
    "InvalidArgs",
    "InvalidIntent",
    "LeaseLost",
    "RegistryError",
    "Retry",
    "StoreUnavailable",
    "TransientError",
    "UnknownTool",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The producer pulls in boto3 and Celery: load it only when asked for.
    if name == "Producer":
        from intentq.producer import Producer

        return Producer
    raise AttributeError(f"module 'intentq' has no attribute {name!r}")
