"""Settings: ``INTENTQ_*`` environment variables and an optional ``intentq.toml``."""

from intentq.config.redact import redacted
from intentq.config.settings import Settings

__all__ = ["Settings", "redacted"]
