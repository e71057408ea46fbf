"""Chaos: intents through real worker processes that are SIGKILLed, against a store that dies.

N worker processes (SQS on a local ministack, or Celery on a Redis broker, both started
here) consume a stream of intents whose tool inserts a row into a PostgreSQL table without
a unique constraint, so a double execution shows. The stream mixes duplicates, poison of
four kinds and transient failures. Every few seconds a random worker is SIGKILLed and
replaced; optionally the store's Redis is SIGKILLed and restarted, or the store's
PostgreSQL connections are terminated. When the queue has drained, the run checks that
every valid intent ran exactly once, none was lost, and the DLQ holds exactly the poison,
each with its reason. Then it fixes the ``fixable`` tool, replays the DLQ, and checks that
the fixed intents ran exactly once while the rest stayed dead. Exit 0 only if every check
holds.

    python -m bench.chaos                                       # quick: ~30 s
    python -m bench.chaos --transport celery --store postgres
    python -m bench.chaos --intents 5000 --workers 3 --kill-every 2 --restart-redis
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: the repository root instead of bench/, whose celery.py and sqs.py
    # would shadow the libraries of those names.
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from bench.chaos.check import Check, Tally, check_replay, check_run, unrecorded
from bench.chaos.cli import parse_args
from bench.chaos.feeder import Feeder
from bench.chaos.fleet import Fleet, Kill
from bench.chaos.plan import Plan, make_plan
from bench.chaos.report import ChaosConfig, ChaosReport
from bench.chaos.tools import Effects
from bench.chaos.transport import CeleryTransport, SqsTransport, make_transport
from bench.chaos.world import PgSchema, RedisServer, ensure_database
from bench.chaos.zygote import Zygote
from intentq.dedup import DedupStore, open_store
from intentq.dlq import DeadLetterStore, open_dlq
from intentq.dlq.base import DeadLetter
from intentq.dlq.replay import replay

__all__ = ["ChaosConfig", "ChaosReport", "run_chaos"]

_POLL = 0.25
_PROGRESS_EVERY = 5.0
# The queue must stay empty this long before the run calls it drained.
_SETTLED = 1.5
# With the queue empty this long and an outcome still missing, it will never come.
_GIVE_UP = 10.0


class _Run:
    """One chaos run's moving parts, set up by ``run_chaos``."""

    def __init__(
        self,
        config: ChaosConfig,
        plan: Plan,
        fx: Effects,
        store: DedupStore,
        dlq: DeadLetterStore,
        transport: SqsTransport | CeleryTransport,
        fleet: Fleet,
        rng: random.Random,
        schema: PgSchema,
        store_app: str,
        redis_server: RedisServer | None,
        say: Callable[[str], None],
    ) -> None:
        self.config, self.plan, self.fx, self.store, self.dlq = config, plan, fx, store, dlq
        self.transport, self.fleet, self.rng, self.schema = transport, fleet, rng, schema
        self.store_app, self.redis_server, self.say = store_app, redis_server, say
        self.pg_terminated = 0
        self.started = time.monotonic()
        self.deadline = self.started + config.timeout

    @property
    def kills_if_plain(self) -> list[Kill] | None:
        """The kills, when the effect is outside the store's transaction (else ``None``)."""
        return None if self.fx.transactional else self.fleet.killed

    # -- waiting -----------------------------------------------------------------------------

    def complete(self, tool: str, keys: int, letters: int) -> bool:
        return self.fx.distinct_keys("effect", tool) >= keys and self.dlq.count() >= letters

    def drained(self) -> bool:
        return self.transport.backlog() == (0, 0)

    def settle(self, done: Callable[[], bool]) -> bool:
        """Wait (no more chaos) until ``done`` and an empty queue hold for a moment.

        ``False`` if time ran out, or if the queue stayed empty while ``done`` never came.
        """
        since: float | None = None
        while time.monotonic() < self.deadline:
            self.fleet.reap()
            complete = done()
            if self.drained():
                since = since or time.monotonic()
                if time.monotonic() - since >= (_SETTLED if complete else _GIVE_UP):
                    return complete
            else:
                since = None
            time.sleep(_POLL)
        return False

    # -- the chaos ---------------------------------------------------------------------------

    def chaos(self, feeder: Feeder) -> None:
        """Kill, restart and terminate until everything expected has happened (or time's up)."""
        c, now = self.config, time.monotonic()
        next_kill = now + c.kill_every if c.kill_every else float("inf")
        next_restart = now + c.restart_every if c.restart_redis else float("inf")
        next_terminate = now + c.terminate_pg_every if c.terminate_pg_every else float("inf")
        next_progress = now + _PROGRESS_EVERY
        want = (len(self.plan.valid_keys), len(self.plan.poison))
        empty_since: float | None = None
        while time.monotonic() < self.deadline:
            if feeder.error is not None:
                raise RuntimeError(f"sending failed: {feeder.error}") from feeder.error
            if feeder.done.is_set():
                if self.complete("effect", *want):
                    return
                # Nothing left anywhere, yet something is missing: waiting will not help.
                if not self.drained():
                    empty_since = None
                elif empty_since is None:
                    empty_since = time.monotonic()
                elif time.monotonic() - empty_since > _GIVE_UP:
                    return
            self.fleet.reap()
            now = time.monotonic()
            if now >= next_kill:
                self.fleet.kill_one(self.rng)
                next_kill = now + c.kill_every
            if now >= next_restart and self.redis_server is not None:
                self.redis_server.restart(c.redis_down)
                next_restart = time.monotonic() + c.restart_every
            if now >= next_terminate:
                self.pg_terminated += self.schema.terminate(self.store_app)
                next_terminate = now + c.terminate_pg_every
            if now >= next_progress:
                self.progress(feeder)
                next_progress = now + _PROGRESS_EVERY
            time.sleep(_POLL)

    def progress(self, feeder: Feeder) -> None:
        if self.config.quiet:
            return
        waiting, held = self.transport.backlog()
        self.say(
            f"  {time.monotonic() - self.started:6.1f} s  sent {feeder.sent}/"
            f"{len(self.plan.messages)}  ran {self.fx.distinct_keys('effect', 'effect')}/"
            f"{len(self.plan.valid_keys)}  letters {self.dlq.count()}/{len(self.plan.poison)}"
            f"  queue {waiting}+{held}  kills {self.fleet.kills}"
        )

    # -- the phases --------------------------------------------------------------------------

    def run(self, report: ChaosReport) -> None:
        plan = self.plan
        self.fleet.fill()
        feeder = Feeder(
            self.transport, plan.messages, self.config.chunk, self.config.backlog_limit,
            self.config.rate,
        )  # fmt: skip
        feeder.start()
        try:
            self.chaos(feeder)
        finally:
            feeder.stop.set()
            feeder.join(30)
        want = (len(plan.valid_keys), len(plan.poison))
        drained = self.settle(lambda: self.complete("effect", *want))
        elapsed = time.monotonic() - self.started
        tally = Tally.read(self.fx, self.dlq)
        delivered = self.transport.received({k.log for k in self.fleet.killed})
        checks, stats = check_run(
            plan, tally, self.kills_if_plain, self.config.lease, delivered,
            unrecorded(self.fleet.workdir),
        )  # fmt: skip
        exits = self.fleet.exits
        checks[:0] = [
            Check(
                "the queue drained, every outcome in, before the deadline",
                drained,
                f"after {time.monotonic() - self.started:.0f} s: queue {self.transport.backlog()}",
            ),
            Check(
                "no worker died on its own",
                not exits,
                "; ".join(f"pid {e.pid} exit {e.code}: {e.log_tail[-300:]!r}" for e in exits[:3]),
            ),
        ]
        report.checks = checks
        report.stats = {
            **stats,
            "messages": len(plan.messages),
            "tool": "transactional" if self.fx.transactional else "plain",
            "transient_intents": len(plan.transient),
            "kinds": dict(plan.kinds),
            "kills": self.fleet.kills,
            "workers_started": self.fleet.started,
            "unexpected_exits": len(exits),
            "redis_restarts": self.redis_server.restarts if self.redis_server else 0,
            "pg_terminated": self.pg_terminated,
            "elapsed": round(elapsed, 2),
            "throughput": round(len(plan.messages) / elapsed, 1),
        }
        self.say(f"  drained in {elapsed:.1f} s; checking, then replaying the DLQ")
        if self.config.replay and drained:
            self.replay_phase(report)

    def replay_phase(self, report: ChaosReport) -> None:
        plan, started = self.plan, time.monotonic()
        self.deadline = started + self.config.timeout
        self.fx.fix()
        letters = list(self.dlq.iter())
        malformed = sum(1 for letter in letters if not letter.key)

        def send(letter: DeadLetter, to: str | None) -> None:
            self.transport.producer.send_raw(letter.body, to)

        summary = replay(self.dlq, self.store, letters, send)
        distinct_unfixable = len({p.match for p in plan.unfixable})
        settled = self.settle(
            lambda: self.complete("fixable", len(plan.fixable_keys), distinct_unfixable)
        )
        tally = Tally.read(self.fx, self.dlq)
        checks, stats = check_replay(
            plan, tally, summary, malformed, self.kills_if_plain, self.config.lease,
            unrecorded(self.fleet.workdir),
        )  # fmt: skip
        checks.insert(0, Check("the replay drained before the deadline", settled))
        report.replay_checks = checks
        report.replay_stats = {**stats, "elapsed": round(time.monotonic() - started, 2)}


def run_chaos(config: ChaosConfig, zygote: Zygote | None = None) -> ChaosReport:
    """Run the whole scenario and return its report (``report.ok`` if every check held).

    Workers are forked by ``zygote`` (one is started for the run if none is given).
    """
    if config.restart_redis and config.store != "redis":
        raise ValueError("--restart-redis needs --store redis")
    if config.terminate_pg_every and config.store != "postgres":
        raise ValueError("--terminate-pg needs --store postgres")
    if config.store not in ("redis", "postgres"):
        raise ValueError(f"unknown store {config.store!r}: use redis or postgres")
    if config.tool == "transactional" and config.store != "postgres":
        raise ValueError("--tool transactional needs --store postgres")
    transactional = config.tool == "transactional" or (
        config.tool == "auto" and config.store == "postgres"
    )
    run_id = uuid.uuid4().hex[:8]
    seed = config.seed if config.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix=f"intentq-chaos-{run_id}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = ChaosReport(config, seed, workdir)

    def say(line: str) -> None:
        if not config.quiet:
            print(line, flush=True)

    say(f"chaos run {run_id}: {config.transport}/{config.store}, logs in {workdir}")
    with ExitStack() as stack:
        ensure_database(config.pg_url)
        schema = PgSchema(config.pg_url, f"chaos_{run_id}")
        schema.create()
        if not config.keep:
            stack.callback(schema.drop)
        fx = Effects(schema.dsn, schema.name, transactional)
        fx.create()
        store_app = f"chaos-store-{run_id}"
        redis_server: RedisServer | None = None
        if config.store == "redis":
            redis_server = RedisServer(workdir, durable=True, name="store")
            redis_server.start()
            stack.callback(redis_server.stop)
            store_url = redis_server.url(0)
        else:
            store_url = schema.url(store_app)
        prefix = f"chaos-{run_id}"
        store = open_store(store_url, prefix=prefix)
        stack.callback(store.close)
        store.create_schema()
        dlq_url = schema.url(f"chaos-dlq-{run_id}")
        dlq = open_dlq(dlq_url)
        stack.callback(dlq.close)
        dlq.create_schema()
        transport = make_transport(
            config.transport, workdir, run_id, config.sqs_endpoint, config.concurrency,
            config.broker,
        )  # fmt: skip
        stack.callback(transport.close)
        settings: dict[str, Any] = {
            **transport.worker_settings(),
            "dedup_url": store_url,
            "dlq_url": dlq_url,
            "key_prefix": prefix,
            "lease": config.lease,
            "backoff_base": 0.1,
            "backoff_max": 1.0,
        }
        fleet = Fleet(
            config.workers,
            lambda i: transport.worker_config(settings, i),
            fx.env(),
            workdir,
            transport.ready_marker,
            zygote or stack.enter_context(Zygote(workdir / "zygote.log")),
        )
        stack.callback(fleet.kill_all)
        plan = make_plan(
            config.intents, config.dup_ratio, config.poison_ratio, config.transient_ratio, rng
        )
        run = _Run(
            config, plan, fx, store, dlq, transport, fleet, rng, schema, store_app,
            redis_server, say,
        )  # fmt: skip
        run.run(report)
        codes = fleet.stop_all()
        report.stats["exit_codes"] = sorted(str(code) for code in codes.values())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    config, path = parse_args(argv)
    report = run_chaos(config)
    print(report.summary())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
