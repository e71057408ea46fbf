"""The Redis store: ``RedisDedupStore``, its Lua scripts (``scripts``) and connections."""

from __future__ import annotations

from intentq.dedup.redis.store import RedisDedupStore

__all__ = ["RedisDedupStore"]
