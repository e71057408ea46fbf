"""The command line of ``bench/chaos/run.py``: every ``ChaosConfig`` field as an option."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.chaos.report import DEFAULT_PG_URL, ChaosConfig


def parse_args(argv: Sequence[str] | None = None) -> tuple[ChaosConfig, Path | None]:
    """The run's configuration, and where to write the JSON report (if anywhere)."""
    d = ChaosConfig()
    p = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Chaos: intents through worker processes that are SIGKILLed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--transport", choices=["sqs", "celery"], default=d.transport)
    p.add_argument("--store", choices=["redis", "postgres"], default=d.store)
    p.add_argument(
        "--broker", choices=["redis", "rabbitmq"], default=d.broker,
        help="Celery's broker: a Redis server of the run's own, or the local RabbitMQ",
    )  # fmt: skip
    p.add_argument("--intents", type=int, default=d.intents, help="original intents")
    p.add_argument("--workers", type=int, default=d.workers, help="worker processes")
    p.add_argument("--concurrency", type=int, default=None, help="per worker (SQS 4, Celery 2)")
    p.add_argument("--kill-every", type=float, default=d.kill_every, help="seconds; 0: none")
    p.add_argument("--dup-ratio", type=float, default=d.dup_ratio)
    p.add_argument("--poison-ratio", type=float, default=d.poison_ratio)
    p.add_argument("--transient-ratio", type=float, default=d.transient_ratio)
    p.add_argument("--restart-redis", action="store_true", help="SIGKILL/restart the store")
    p.add_argument("--restart-every", type=float, default=d.restart_every)
    p.add_argument("--redis-down", type=float, default=d.redis_down)
    p.add_argument(
        "--terminate-pg", type=float, default=d.terminate_pg_every, metavar="SECONDS",
        help="pg_terminate_backend the store's connections every SECONDS; 0: never",
    )  # fmt: skip
    p.add_argument(
        "--tool", choices=["auto", "plain", "transactional"], default=d.tool,
        help="where the effect row is written: plain (its own connection) or in the store's "
        "transaction (PostgreSQL store); auto: transactional on PostgreSQL",
    )  # fmt: skip
    p.add_argument("--rate", type=float, default=d.rate, help="messages/s sent; 0: no limit")
    p.add_argument("--lease", type=float, default=d.lease)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--timeout", type=float, default=d.timeout)
    p.add_argument("--no-replay", action="store_true")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--sqs-endpoint", default=None, help="use this local SQS server")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    o = p.parse_args(argv)
    config = ChaosConfig(
        transport=o.transport, store=o.store, broker=o.broker, intents=o.intents, workers=o.workers,
        concurrency=o.concurrency, kill_every=o.kill_every, dup_ratio=o.dup_ratio,
        poison_ratio=o.poison_ratio, transient_ratio=o.transient_ratio,
        restart_redis=o.restart_redis, restart_every=o.restart_every, redis_down=o.redis_down,
        terminate_pg_every=o.terminate_pg, tool=o.tool, rate=o.rate, lease=o.lease, seed=o.seed,
        timeout=o.timeout,
        replay=not o.no_replay, pg_url=o.pg_url, sqs_endpoint=o.sqs_endpoint,
        workdir=o.workdir, keep=o.keep,
    )  # fmt: skip
    return config, o.json
