"""What a worker checks once at start: its store, its dead-letter store, its broker or queue.

``preflight`` probes each once and logs one line per check: the URL (redacted), whether it
answered, and what the worker does about it. An unreachable store is a warning (claims are
deferred until it answers) unless ``require_store`` is set; a schema the code cannot use is
an error (``SchemaMismatch``), whatever else answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intentq.config.redact import redacted
from intentq.errors import SchemaMismatch, StoreUnavailable

if TYPE_CHECKING:
    from intentq.config.settings import Settings
    from intentq.dedup.base import DedupStore
    from intentq.dlq.base import DeadLetterStore

log = logging.getLogger("intentq.preflight")

# What a worker does when the thing checked does not answer.
STORE_DOWN = "claims are deferred (messages go back to the broker) until it answers"
DLQ_DOWN = "dead-lettering is retried (the message stays on the broker) until it answers"
STORE_UP = "claims run through it"
DLQ_UP = "dead letters go there"

# A key no tool uses: reading it touches the store and finds nothing.
_PROBE_TOOL, _PROBE_KEY = "intentq.preflight", "-"


class StoreRequired(StoreUnavailable):
    """``require_store`` is set and the store did not answer at start."""


@dataclass(frozen=True)
class Check:
    """One thing a worker looked at on start: ``what`` at ``url``, and what it will do."""

    what: str
    url: str
    ok: bool
    then: str
    error: str = ""

    def line(self) -> str:
        """The log line: ``store sqlite:///intentq.db: reachable; claims run through it``."""
        state = "reachable" if self.ok else f"NOT reachable ({self.error})"
        return f"{self.what} {self.url}: {state}; {self.then}"


def probe(what: str, url: str, call: Callable[[], object], *, up: str, down: str) -> Check:
    """Run ``call`` once: a ``Check`` that says whether it answered. A schema mismatch is
    raised, not reported: the worker cannot run on that schema, reachable or not."""
    try:
        call()
    except SchemaMismatch:
        raise
    except Exception as exc:
        return Check(what, redacted(url), False, down, _one_line(exc))
    return Check(what, redacted(url), True, up)


def preflight(
    settings: Settings,
    store: DedupStore,
    dlq: DeadLetterStore,
    broker: Check | None = None,
) -> list[Check]:
    """Check ``store``, ``dlq`` (reachable, schema as this code needs it) and log one line
    each, with ``broker`` (the transport's own check) last.

    Raises ``SchemaMismatch`` if either schema is not the one this code needs, and
    ``StoreRequired`` if the store did not answer and ``settings.require_store`` is set.
    """

    # The schema first: a store that answers with the wrong schema is an error, while one
    # that does not answer at all fails both calls and is only reported.
    def store_probe() -> None:
        store.check_schema()
        store.get(_PROBE_TOOL, _PROBE_KEY)

    def dlq_probe() -> None:
        dlq.check_schema()
        dlq.list(limit=1)

    checks = [
        probe("store", settings.dedup_url, store_probe, up=STORE_UP, down=STORE_DOWN),
        probe("dead-letter store", settings.dlq_url, dlq_probe, up=DLQ_UP, down=DLQ_DOWN),
    ]
    if broker is not None:
        checks.append(broker)
    for check in checks:
        log.log(logging.INFO if check.ok else logging.WARNING, "%s", check.line())
    if settings.require_store and not checks[0].ok:
        raise StoreRequired(
            f"the store {checks[0].url} cannot be reached ({checks[0].error}) and "
            "require_store is set"
        )
    return checks


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redacted(text[:300])
