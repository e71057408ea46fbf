"""``open_dlq(url)``: the backend is chosen by the URL's scheme."""

from __future__ import annotations

from intentq.config.redact import redacted
from intentq.dlq.base import DeadLetterStore
from intentq.errors import ConfigError


def open_dlq(url: str, **options: object) -> DeadLetterStore:
    """``memory://``, ``postgresql+psycopg://...``, ``sqlite:///...``, ``sqs://queue-name``.

    ``sqs://NAME`` (or an ``http(s)://`` queue URL after ``sqs+``) takes ``endpoint_url``,
    ``region``, ``client`` and the other keywords of ``SqsDeadLetterStore.from_url``; SQL URLs
    take ``table_name``.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from intentq.dlq.memory import MemoryDeadLetterStore

        return MemoryDeadLetterStore()
    if scheme.startswith(("postgresql", "sqlite")):
        from intentq.dlq.sql import SqlDeadLetterStore

        return SqlDeadLetterStore.from_url(url, **options)  # type: ignore[arg-type]
    if scheme in ("sqs", "sqs+http", "sqs+https"):
        from intentq.dlq.sqs.store import SqsDeadLetterStore

        return SqsDeadLetterStore.from_url(url, **options)  # type: ignore[arg-type]
    raise ConfigError(
        f"unsupported DLQ URL {redacted(url)!r}: use memory://, postgresql+psycopg://..., "
        "sqlite:///... or sqs://queue-name"
    )
