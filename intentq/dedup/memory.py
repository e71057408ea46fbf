"""An in-process store for unit tests and the demo: per-instance state, thread-safe."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from intentq.dedup.base import (
    MIN_RETRY_AFTER,
    Acquired,
    Busy,
    Cached,
    Claim,
    CompleteRequest,
    Dead,
    DedupStore,
    Mismatch,
    Record,
    State,
)
from intentq.defaults import DEFAULT_LEASE, DEFAULT_TTL
from intentq.errors import LeaseLost


class MemoryDedupStore(DedupStore):
    """Holds records in a dict; ``clock`` is injectable so tests can move time."""

    def __init__(self, prefix: str = "intentq", clock: Callable[[], float] = time.time) -> None:
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], Record] = {}

    def _live(self, tool: str, key: str, now: float) -> Record | None:
        record = self._records.get((tool, key))
        if record is not None and record.expires_at <= now:
            del self._records[(tool, key)]
            return None
        return record

    def claim(
        self,
        tool: str,
        key: str,
        fingerprint: str,
        lease: float = DEFAULT_LEASE,
        ttl: float = DEFAULT_TTL,
    ) -> Claim:
        with self._lock:
            now = self._clock()
            record = self._live(tool, key, now)
            if record is None:
                token = uuid.uuid4().hex
                self._records[(tool, key)] = Record(
                    tool,
                    key,
                    State.IN_PROGRESS,
                    fingerprint,
                    token,
                    now + lease,
                    1,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + max(ttl, lease),
                )
                return Acquired(token, 1, takeover=False)
            if record.fingerprint != fingerprint:
                return Mismatch(fingerprint=fingerprint, existing=record.fingerprint)
            if record.state is State.COMPLETED:
                return Cached(record.result)
            if record.state is State.FAILED:
                return Dead(record.error or {})
            if record.lease_until > now:
                return Busy(max(record.lease_until - now, MIN_RETRY_AFTER))
            token = uuid.uuid4().hex
            attempt = record.attempts + 1
            self._records[(tool, key)] = replace(
                record,
                token=token,
                lease_until=now + lease,
                attempts=attempt,
                updated_at=now,
                expires_at=max(record.expires_at, now + lease),
            )
            return Acquired(token, attempt, takeover=bool(record.token))

    def _owned(self, tool: str, key: str, token: str, now: float) -> Record:
        record = self._live(tool, key, now)
        # A released record's token is empty: an empty token owns nothing.
        if (
            record is None
            or record.state is not State.IN_PROGRESS
            or not token
            or record.token != token
        ):
            raise LeaseLost(tool, key, token, record)
        return record

    def complete(
        self, tool: str, key: str, token: str, result: Any, ttl: float = DEFAULT_TTL
    ) -> None:
        with self._lock:
            self._complete(tool, key, token, result, ttl, self._clock())

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[LeaseLost | None]:
        """The whole batch under the lock, in order."""
        answers: list[LeaseLost | None] = []
        with self._lock:
            now = self._clock()
            for r in requests:
                try:
                    self._complete(r.tool, r.key, r.token, r.result, r.ttl, now)
                except LeaseLost as lost:
                    answers.append(lost)
                else:
                    answers.append(None)
        return answers

    def _complete(
        self, tool: str, key: str, token: str, result: Any, ttl: float, now: float
    ) -> None:
        record = self._owned(tool, key, token, now)
        self._records[(tool, key)] = replace(
            record,
            state=State.COMPLETED,
            result=result,
            token="",
            lease_until=0.0,
            updated_at=now,
            expires_at=now + ttl,
        )

    def release(self, tool: str, key: str, token: str) -> None:
        with self._lock:
            now = self._clock()
            record = self._owned(tool, key, token, now)
            self._records[(tool, key)] = replace(record, token="", lease_until=0.0, updated_at=now)

    def fail(
        self, tool: str, key: str, token: str, error: dict[str, Any], ttl: float = DEFAULT_TTL
    ) -> None:
        with self._lock:
            now = self._clock()
            record = self._owned(tool, key, token, now)
            self._records[(tool, key)] = replace(
                record,
                state=State.FAILED,
                error=dict(error),
                token="",
                lease_until=0.0,
                updated_at=now,
                expires_at=now + ttl,
            )

    def extend(self, tool: str, key: str, token: str, lease: float = DEFAULT_LEASE) -> float:
        with self._lock:
            now = self._clock()
            record = self._owned(tool, key, token, now)
            until = now + lease
            self._records[(tool, key)] = replace(
                record,
                lease_until=until,
                updated_at=now,
                expires_at=max(record.expires_at, until),
            )
            return until

    def get(self, tool: str, key: str) -> Record | None:
        with self._lock:
            return self._live(tool, key, self._clock())

    def forget(self, tool: str, key: str) -> bool:
        with self._lock:
            return self._records.pop((tool, key), None) is not None

    def reset(self, tool: str, key: str) -> bool:
        with self._lock:
            record = self._live(tool, key, self._clock())
            if record is None or record.state is not State.FAILED:
                return False
            del self._records[(tool, key)]
            return True
