"""The idempotency store's contract: records, claim outcomes and the ``DedupStore`` base."""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from intentq.defaults import DEFAULT_LEASE, DEFAULT_TTL
from intentq.errors import LeaseLost

# A Busy duplicate is never told to come back sooner than this (seconds).
MIN_RETRY_AFTER = 0.05


class State(enum.StrEnum):
    """Where a ``(tool, key)`` record stands."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Record:
    """One ``(tool, key)`` as the store holds it; times are the store clock's epoch seconds."""

    tool: str
    key: str
    state: State
    fingerprint: str
    token: str  # empty once released: nobody owns it
    lease_until: float
    attempts: int
    result: Any = None
    error: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float = math.inf


@dataclass(frozen=True)
class ClaimRequest:
    """One entry of a ``claim_many`` batch."""

    tool: str
    key: str
    fingerprint: str
    lease: float = DEFAULT_LEASE
    ttl: float = DEFAULT_TTL


@dataclass(frozen=True)
class CompleteRequest:
    """One entry of a ``complete_many`` batch: the owner's token and the result to record."""

    tool: str
    key: str
    token: str
    result: Any
    ttl: float = DEFAULT_TTL


@dataclass(frozen=True)
class Acquired:
    """The caller owns the key until ``lease`` runs out: run the tool."""

    token: str
    attempt: int
    takeover: bool = False


@dataclass(frozen=True)
class Cached:
    """The key completed before: hand back ``result`` (which may be falsy)."""

    result: Any


@dataclass(frozen=True)
class Dead:
    """The key was dead-lettered; duplicates get this until a replay resets it."""

    error: dict[str, Any]


@dataclass(frozen=True)
class Busy:
    """Another owner holds a live lease: come back in ``retry_after`` seconds."""

    retry_after: float


@dataclass(frozen=True)
class Mismatch:
    """The key is known with another fingerprint: a client bug, the first result stays."""

    fingerprint: str
    existing: str


Claim = Acquired | Cached | Dead | Busy | Mismatch


def store_key(prefix: str, tool: str, key: str) -> str:
    """``{prefix}:{tool}:{key}``: tool names carry no colon, so this never collides."""
    return f"{prefix}:{tool}:{key}"


class DedupStore(ABC):
    """Decides, once per ``(tool, key)``, who runs a side effect and what duplicates get.

    Every clock decision uses the store's own clock. A store that cannot be reached raises
    ``StoreUnavailable``; a stale token raises ``LeaseLost``.
    """

    prefix: str = "intentq"

    @abstractmethod
    def claim(
        self,
        tool: str,
        key: str,
        fingerprint: str,
        lease: float = DEFAULT_LEASE,
        ttl: float = DEFAULT_TTL,
    ) -> Claim:
        """One atomic step: absent or expired lease -> ``Acquired``; else what the record says."""

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """Claim a batch; backends override this to make it one round trip."""
        return [self.claim(r.tool, r.key, r.fingerprint, r.lease, r.ttl) for r in requests]

    @abstractmethod
    def complete(
        self, tool: str, key: str, token: str, result: Any, ttl: float = DEFAULT_TTL
    ) -> None:
        """Record the result; only the token's owner may (``LeaseLost`` otherwise)."""

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[LeaseLost | None]:
        """Record a batch of results: ``None`` for each entry recorded, its ``LeaseLost`` for
        each whose token did not own the key (the others are recorded all the same).

        Entries count in order, so a key given twice is recorded by the first entry its token
        owns. Backends override this to make it one round trip. ``StoreUnavailable``: some
        entries may be recorded; completing one of those again answers ``LeaseLost``.
        """
        answers: list[LeaseLost | None] = []
        for r in requests:
            try:
                self.complete(r.tool, r.key, r.token, r.result, r.ttl)
            except LeaseLost as lost:
                answers.append(lost)
            else:
                answers.append(None)
        return answers

    @abstractmethod
    def release(self, tool: str, key: str, token: str) -> None:
        """Give the key back after a retryable failure; ``attempts`` is kept."""

    @abstractmethod
    def fail(
        self, tool: str, key: str, token: str, error: dict[str, Any], ttl: float = DEFAULT_TTL
    ) -> None:
        """Mark the key dead-lettered: duplicates get ``Dead`` until ``reset``."""

    @abstractmethod
    def extend(self, tool: str, key: str, token: str, lease: float = DEFAULT_LEASE) -> float:
        """Heartbeat: push the lease ``lease`` seconds past now; returns the new ``lease_until``."""

    @abstractmethod
    def get(self, tool: str, key: str) -> Record | None:
        """The record, or ``None`` if absent or expired."""

    @abstractmethod
    def forget(self, tool: str, key: str) -> bool:
        """Delete the record whatever its state (an operator's act); ``True`` if it existed."""

    @abstractmethod
    def reset(self, tool: str, key: str) -> bool:
        """Delete a failed record so a replay starts afresh (attempts 0); others are left alone."""

    def gc(self) -> int:
        """Delete expired records; returns how many (backends that expire by themselves: 0)."""
        return 0

    def create_schema(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Create tables or scripts the backend needs; idempotent."""

    def check_schema(self) -> None:  # noqa: B027 - optional hook: schemaless backends pass
        """Raise ``SchemaMismatch`` if the stored schema is one this code cannot use."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> DedupStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Completion(Protocol):
    """An open transaction a tool writes through; ``complete`` adds the completion record."""

    @property
    def session(self) -> Any:
        """The SQLAlchemy ``Session`` the tool writes its own rows with."""

    def complete(self, result: Any) -> None:
        """Write the completion record (fenced by the token) in the same transaction."""


@runtime_checkable
class TransactionalStore(Protocol):
    """A store whose completion can commit in one transaction with the tool's own writes.

    ``transaction(...)`` is a context manager: it commits on a clean exit after
    ``complete``, and rolls everything back if the block raises or the token lost its lease
    (``LeaseLost``), so the tool's rows never outlive a lost claim.
    """

    def transaction(
        self, tool: str, key: str, token: str, ttl: float = DEFAULT_TTL
    ) -> AbstractContextManager[Completion]: ...
