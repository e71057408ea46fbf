"""A chaos run's configuration and its report: the checks, the counts, a printable summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.check import Check

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intentq_chaos"


@dataclass
class ChaosConfig:
    """Defaults make a quick run (about 30 s); see ``bench/chaos/run.py --help``."""

    transport: str = "sqs"  # sqs | celery
    store: str = "redis"  # redis | postgres
    broker: str = "redis"  # Celery's broker: redis (the run's own) | rabbitmq (the local one)
    intents: int = 1000
    workers: int = 2
    concurrency: int | None = None  # per worker: SQS threads (4), Celery processes (2)
    kill_every: float = 2.0  # seconds between SIGKILLs; 0 kills nothing
    dup_ratio: float = 0.2
    poison_ratio: float = 0.05
    transient_ratio: float = 0.1
    restart_redis: bool = False  # SIGKILL and restart the store's Redis now and then
    restart_every: float = 8.0
    redis_down: float = 1.0  # seconds the store's Redis stays down at each restart
    terminate_pg_every: float = 0.0  # pg_terminate_backend the store's connections; 0: never
    tool: str = "auto"  # auto | plain | transactional (auto: transactional on PostgreSQL)
    # Longer than a store restart plus the completion's retries: a tool that finished while
    # the store was down must still own its key when the store is back.
    lease: float = 5.0
    seed: int | None = None
    timeout: float = 300.0  # the whole run must drain within this many seconds
    replay: bool = True
    pg_url: str = DEFAULT_PG_URL
    sqs_endpoint: str | None = None  # a running local SQS server; default: start one
    workdir: Path | None = None  # logs; default: a new temporary folder
    keep: bool = False  # keep the PostgreSQL schema (effects, DLQ, store) for inspection
    backlog_limit: int = 2000  # the feeder waits while more messages than this wait
    chunk: int = 100
    rate: float = 0.0  # messages per second sent; 0: as fast as the backlog limit allows
    quiet: bool = False


@dataclass
class ChaosReport:
    config: ChaosConfig
    seed: int
    workdir: Path
    checks: list[Check] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    replay_checks: list[Check] = field(default_factory=list)
    replay_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def all_checks(self) -> list[Check]:
        return self.checks + self.replay_checks

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.all_checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.all_checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["workdir"] = str(self.workdir)
        return {
            "ok": self.ok,
            "seed": self.seed,
            "config": config,
            "stats": self.stats,
            "replay": self.replay_stats,
            "checks": [asdict(c) for c in self.all_checks],
        }

    def summary(self) -> str:
        c, s, r = self.config, self.stats, self.replay_stats
        concurrency = f" x{c.concurrency}" if c.concurrency else ""
        chaos = [f"SIGKILL every {c.kill_every:g} s" if c.kill_every else "no kills"]
        if c.restart_redis:
            chaos.append(f"store Redis restarted every {c.restart_every:g} s")
        if c.terminate_pg_every:
            chaos.append(f"store connections terminated every {c.terminate_pg_every:g} s")
        transport = c.transport if c.transport == "sqs" else f"celery ({c.broker} broker)"
        lines = [
            f"intentq chaos: {transport}, {c.store} store, {c.workers} workers"
            f"{concurrency}, {c.intents} intents, seed {self.seed}; {', '.join(chaos)}",
            f"  sent          {s.get('messages', 0)} messages: {s.get('valid_intents', 0)} valid "
            f"({s.get('transient_intents', 0)} failing transiently first), "
            f"{s.get('poison', 0)} poison, {s.get('duplicates_sent', 0)} duplicates",
            f"  chaos         {s.get('kills', 0)} workers SIGKILLed, "
            f"{s.get('redis_restarts', 0)} Redis restarts, "
            f"{s.get('pg_terminated', 0)} store connections terminated, "
            f"{s.get('unexpected_exits', 0)} workers died on their own",
            f"  drained       in {s.get('elapsed', 0):.1f} s "
            f"({s.get('throughput', 0):.0f} messages/s)",
            f"  executions    {s.get('executions', 0)} effect rows for "
            f"{s.get('valid_intents', 0)} valid intents ({s.get('tool')} tool); "
            f"{s.get('doubles', 0)} ran twice ({s.get('crash_window_reruns', 0)} after a SIGKILL "
            f"between effect and record; {s.get('completions_given_up', 0)} completions given up "
            f"in a store outage), {s.get('lost', 0)} lost",
            f"  duplicates    {s.get('duplicates_suppressed', 0)} copies answered without running",
            f"  takeovers     {s.get('takeovers', 0)} abandoned claims taken over after the lease",
            f"  retries       {s.get('retries', 0)} transient failures retried",
            f"  dead letters  {s.get('letters', 0)} for {s.get('poison', 0)} poison messages "
            f"({s.get('duplicate_letters', 0)} written twice by a worker killed before its ack)",
        ]
        if r:
            lines.append(
                f"  replay        fixed, then {r.get('replayed', 0)} replayed, "
                f"{r.get('refused', 0)} refused; {r.get('fixed_executions', 0)} fixed intents "
                f"ran, {r.get('after_letters', 0)} letters left, in {r.get('elapsed', 0):.1f} s"
            )
        lines.append("checks:")
        for check in self.all_checks:
            mark = "ok  " if check.ok else "FAIL"
            detail = f" - {check.detail}" if check.detail and not check.ok else ""
            lines.append(f"  [{mark}] {check.name}{detail}")
        lines.append(f"logs: {self.workdir}")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)
