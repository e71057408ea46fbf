"""The Redis store: one hash per record, every call one round trip through a Lua script.

The scripts read the server's clock (``TIME``), so workers with skewed clocks agree on
leases. Records expire by Redis itself (``PEXPIREAT``); there is nothing to collect.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from intentq.config.redact import redacted
from intentq.dedup import codec
from intentq.dedup.base import (
    MIN_RETRY_AFTER,
    Acquired,
    Busy,
    Cached,
    Claim,
    ClaimRequest,
    CompleteRequest,
    Dead,
    DedupStore,
    Mismatch,
    Record,
    State,
    store_key,
)
from intentq.dedup.redis.cluster import ClusterScripts, cluster_client, is_cluster_url
from intentq.dedup.redis.connections import DirectConnections
from intentq.dedup.redis.scripts import SCRIPTS, Script
from intentq.defaults import DEFAULT_LEASE, DEFAULT_TTL
from intentq.errors import DedupError, LeaseLost, NewerRecordFormat, StoreUnavailable

# For clients built by ``from_url``: fail fast; ping a pooled connection idle this long.
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 10.0
HEALTH_CHECK_INTERVAL = 1
# Errors that say the server cannot serve now (a retry later may work).
UNAVAILABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ReadOnlyError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.MasterDownError,
    rx.OutOfMemoryError,
)
# redis-py's Cluster errors are no ``RedisError``s; one is transient when a slot has no
# master (a failover) or no node answered the topology query (its cause says so).
DRIVER_ERRORS = (rx.RedisError, rx.RedisClusterException)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _token() -> str:
    """A new fencing token: 128 random bits."""
    return secrets.token_hex(16)


def _translate(exc: Exception) -> Exception:
    """The store's error for a driver error: ``StoreUnavailable`` if transient."""
    if isinstance(exc, (*UNAVAILABLE, rx.SlotNotCoveredError)) or (
        isinstance(exc, rx.RedisClusterException) and isinstance(exc.__cause__, UNAVAILABLE)
    ):
        return StoreUnavailable(f"Redis store unavailable: {exc}")
    return DedupError(f"Redis store error: {exc}")


class RedisDedupStore(DedupStore):
    """Records in Redis hashes at ``{prefix}:{tool}:{key}``; the client is injected."""

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        prefix: str = "intentq",
        *,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._owns_client = owns_client
        self._cluster = ClusterScripts.for_client(client)
        self._direct = (
            DirectConnections.for_client(client) if isinstance(client, redis.Redis) else None
        )

    @classmethod
    def from_url(cls, url: str, prefix: str = "intentq", **options: Any) -> RedisDedupStore:
        """A store on a client made from ``redis://``, ``rediss://`` or ``unix://`` URLs, or
        a ``RedisCluster`` from ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
        options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
        options.setdefault("socket_timeout", SOCKET_TIMEOUT)
        options.setdefault("health_check_interval", HEALTH_CHECK_INTERVAL)
        # No blind resend: a release whose reply was lost would come back LeaseLost and the
        # intent would be acknowledged unfinished. StoreUnavailable lets the executor decide.
        options.setdefault("retry", Retry(NoBackoff(), 0))
        try:
            if is_cluster_url(url):
                client: redis.Redis | redis.RedisCluster = cluster_client(url, **options)
            else:
                client = redis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise DedupError(f"bad Redis URL {redacted(url)!r}: {exc}") from exc
        except DRIVER_ERRORS as exc:  # a cluster client asks its nodes for the slots at once
            raise _translate(exc) from exc
        return cls(client, prefix, owns_client=True)

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors become ``StoreUnavailable`` (transient) or ``DedupError``."""
        try:
            yield
        except DRIVER_ERRORS as exc:
            raise _translate(exc) from exc

    def load_scripts(self) -> None:
        """``SCRIPT LOAD`` every script (one pipelined round trip; on Cluster, on every
        master)."""
        if self._cluster is not None:
            with self._translated():
                return self._cluster.load()
        with self._translated(), self.client.pipeline(transaction=False) as pipe:
            for script in SCRIPTS.values():
                pipe.script_load(script.source)
            pipe.execute()

    def _evalsha_batch(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``EVALSHA`` calls in one round trip; an error reply is returned in its place."""
        if self._direct is not None:
            return self._direct.batch([("EVALSHA", *call) for call in calls])
        if self._cluster is not None:
            return self._cluster.evalsha_batch(calls)
        with self.client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(*call)
            return list(pipe.execute(raise_on_error=False))

    def _evalsha(self, *args: Any) -> Any:
        """One ``EVALSHA``; an error reply is raised."""
        if self._direct is not None:
            return self._direct.call("EVALSHA", *args)
        if self._cluster is not None:
            return self._cluster.evalsha(*args)
        return self.client.evalsha(*args)

    def _eval(self, script: Script, key: str, *args: Any) -> Any:
        # The hot path: plain try/except, no context manager.
        try:
            return self._evalsha(script.sha, 1, key, *args)
        except rx.NoScriptError:
            pass  # the server restarted or flushed its scripts since we loaded them
        except DRIVER_ERRORS as exc:
            raise _translate(exc) from exc
        self.load_scripts()
        with self._translated():
            return self._evalsha(script.sha, 1, key, *args)

    def _key(self, tool: str, key: str) -> str:
        return store_key(self.prefix, tool, key)

    def _record(self, tool: str, key: str, flat: Any) -> Record | None:
        """A record from ``HGETALL`` (a dict, or a flat list when it came from a script)."""
        pairs: Iterable[tuple[Any, Any]] = (
            flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
        )
        fields = {_text(k): v for k, v in pairs}
        if not fields:
            return None
        codec.record_format(fields.get("fmt"))  # none: written by 0.1, read as it is
        state = State(_text(fields["state"]))
        live = state is State.IN_PROGRESS  # a final record's token and lease are leftovers
        return Record(
            tool=tool,
            key=key,
            state=state,
            fingerprint=_text(fields["fp"]),
            token=_text(fields["token"]) if live else "",
            lease_until=int(fields["lease"]) / 1000 if live else 0.0,
            attempts=int(fields["attempts"]),
            result=codec.load(fields.get("result")),
            error=codec.load_error(fields["error"]) if "error" in fields else None,
            created_at=int(fields["created"]) / 1000,
            updated_at=int(fields.get("updated", fields["created"])) / 1000,
            expires_at=int(fields["expires"]) / 1000,
        )

    def _owned(self, tool: str, key: str, token: str, reply: Any) -> int:
        """An owner-only script's number, or ``LeaseLost`` if it answered ``{0, record}``."""
        if isinstance(reply, list):
            raise LeaseLost(tool, key, token, self._record(tool, key, reply[1]))
        return int(reply)

    # -- the contract --------------------------------------------------------------------

    def claim(
        self,
        tool: str,
        key: str,
        fingerprint: str,
        lease: float = DEFAULT_LEASE,
        ttl: float = DEFAULT_TTL,
    ) -> Claim:
        token = _token()
        args = (fingerprint, _ms(lease), _ms(ttl), token)
        reply = self._eval(SCRIPTS["claim"], self._key(tool, key), *args)
        return _claim_reply(reply, token, fingerprint)

    def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """The whole batch pipelined: one round trip (two after a server lost its scripts)."""
        if not requests:
            return []
        script = SCRIPTS["claim"]
        calls = [
            (
                self._key(r.tool, r.key),
                (r.fingerprint, _ms(r.lease), _ms(r.ttl), _token()),
            )
            for r in requests
        ]
        replies = self._run_batch(script, calls)
        return [
            _claim_reply(answer, call[1][3], r.fingerprint)
            for answer, call, r in zip(replies, calls, requests, strict=True)
        ]

    def complete_many(self, requests: Sequence[CompleteRequest]) -> list[LeaseLost | None]:
        """One ``EVALSHA`` of the finishing script per entry, pipelined: one round trip. The
        server runs them in order, so a key given twice is finished by the first owner."""
        if not requests:
            return []
        done = State.COMPLETED.value
        calls = [
            (self._key(r.tool, r.key), (r.token, done, "result", codec.dump(r.result), _ms(r.ttl)))
            for r in requests
        ]
        answers: list[LeaseLost | None] = []
        for reply, r in zip(self._run_batch(SCRIPTS["finish"], calls), requests, strict=True):
            try:
                self._owned(r.tool, r.key, r.token, reply)
            except LeaseLost as lost:
                answers.append(lost)
            else:
                answers.append(None)
        return answers

    def _run_batch(self, script: Script, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """``(key, args)`` calls of one script in one round trip (two after a server lost
        its scripts); any error reply is raised as the store's error."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for round_ in range(2):
            with self._translated():
                answers = self._evalsha_batch(
                    [(script.sha, 1, calls[i][0], *calls[i][1]) for i in pending]
                )
            for i, answer in zip(pending, answers, strict=True):
                replies[i] = answer
            pending = [i for i in pending if isinstance(replies[i], rx.NoScriptError)]
            if not pending:
                break
            if round_ == 0:
                self.load_scripts()
        for answer in replies:
            if isinstance(answer, rx.RedisError):
                with self._translated():
                    raise answer
        return replies

    def complete(
        self, tool: str, key: str, token: str, result: Any, ttl: float = DEFAULT_TTL
    ) -> None:
        args = (token, State.COMPLETED.value, "result", codec.dump(result), _ms(ttl))
        self._owned(tool, key, token, self._eval(SCRIPTS["finish"], self._key(tool, key), *args))

    def fail(
        self, tool: str, key: str, token: str, error: dict[str, Any], ttl: float = DEFAULT_TTL
    ) -> None:
        args = (token, State.FAILED.value, "error", codec.dump(dict(error)), _ms(ttl))
        self._owned(tool, key, token, self._eval(SCRIPTS["finish"], self._key(tool, key), *args))

    def release(self, tool: str, key: str, token: str) -> None:
        reply = self._eval(SCRIPTS["release"], self._key(tool, key), token)
        self._owned(tool, key, token, reply)

    def extend(self, tool: str, key: str, token: str, lease: float = DEFAULT_LEASE) -> float:
        reply = self._eval(SCRIPTS["extend"], self._key(tool, key), token, _ms(lease))
        return self._owned(tool, key, token, reply) / 1000

    def get(self, tool: str, key: str) -> Record | None:
        with self._translated():
            fields = self.client.hgetall(self._key(tool, key))
        return self._record(tool, key, fields)

    def forget(self, tool: str, key: str) -> bool:
        with self._translated():
            return bool(self.client.delete(self._key(tool, key)))

    def reset(self, tool: str, key: str) -> bool:
        return bool(self._eval(SCRIPTS["reset"], self._key(tool, key)))

    def create_schema(self) -> None:
        """Nothing to create in Redis; loads the scripts so the first calls need no reload."""
        self.load_scripts()

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        if self._owns_client:
            self.client.close()


def _claim_reply(reply: Any, token: str, fingerprint: str) -> Claim:
    if isinstance(reply, int):  # the common case, a new key: a plain integer parses fastest
        return Acquired(token, 1, takeover=False)
    code = int(reply[0])
    if code == 1:
        return Acquired(token, int(reply[1]), takeover=bool(int(reply[2])))
    if code == 2:
        return Cached(codec.load(reply[1]))
    if code == 3:
        return Dead(codec.load_error(reply[1]))
    if code == 4:
        return Busy(max(int(reply[1]) / 1000, MIN_RETRY_AFTER))
    if code == 5:
        return Mismatch(fingerprint=fingerprint, existing=_text(reply[1]))
    if code == 6:
        raise NewerRecordFormat(int(reply[1]), codec.RECORD_FORMAT)
    raise DedupError(f"unexpected reply from the claim script: {reply!r}")
