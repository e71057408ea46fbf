"""Retry policy: which errors are retryable, and how long to wait."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from intentq.config.settings import Settings
from intentq.defaults import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_LEASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RECEIVES,
    DEFAULT_TTL,
    MAX_MESSAGE_BYTES,
)
from intentq.errors import TransientError
from intentq.registry import ToolSpec

# When the store is down, a message comes back after at least this long (plus the backoff).
STORE_OUTAGE_DELAY = 2.0
# Errors any tool may hit that say "the network or a peer hiccupped", not "this is wrong".
RETRYABLE: tuple[type[BaseException], ...] = (TransientError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Policy:
    """Defaults for every tool; a tool's own ``max_attempts``, ``ttl``, ``lease`` win."""

    ttl: float = DEFAULT_TTL
    lease: float = DEFAULT_LEASE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_receives: int = DEFAULT_MAX_RECEIVES
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            ttl=settings.dedup_ttl,
            lease=settings.lease,
            max_attempts=settings.max_attempts,
            max_receives=settings.max_receives,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            max_message_bytes=settings.max_message_bytes,
        )

    def ttl_for(self, spec: ToolSpec) -> float:
        return spec.ttl or self.ttl

    def lease_for(self, spec: ToolSpec) -> float:
        return spec.lease or self.lease

    def max_attempts_for(self, spec: ToolSpec) -> int:
        return spec.max_attempts or self.max_attempts

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Exponential with full jitter: uniform in [0, min(max, base * 2**(attempt-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(attempt - 1, 62))
        return float(rand() * ceiling)

    def outage_delay(self, attempt: int) -> float:
        """How long a message waits for the store to come back: a floor plus the backoff."""
        return STORE_OUTAGE_DELAY + self.backoff(attempt)


def is_retryable(spec: ToolSpec, exc: BaseException) -> bool:
    """Transient by type: ``TransientError``, connection and timeout errors, ``retry_on``."""
    return isinstance(exc, RETRYABLE + spec.retry_on)
