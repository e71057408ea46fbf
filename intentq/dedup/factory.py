"""``open_store(url)``: the backend is chosen by the URL's scheme."""

from __future__ import annotations

from intentq.config.redact import redacted
from intentq.dedup.base import DedupStore
from intentq.errors import ConfigError


def open_store(url: str, prefix: str = "intentq") -> DedupStore:
    """``memory://``, ``redis://``/``rediss://``, ``postgresql+psycopg://``, ``sqlite:///``."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from intentq.dedup.memory import MemoryDedupStore

        return MemoryDedupStore(prefix=prefix)
    if scheme in ("redis", "rediss", "unix"):
        from intentq.dedup.redis.store import RedisDedupStore

        return RedisDedupStore.from_url(url, prefix=prefix)
    if scheme.startswith(("postgresql", "sqlite")):
        from intentq.dedup.sql.store import SqlDedupStore

        return SqlDedupStore.from_url(url, prefix=prefix)
    raise ConfigError(
        f"unsupported dedup store URL {redacted(url)!r}: use memory://, redis://, "
        "postgresql+psycopg://... or sqlite:///..."
    )
