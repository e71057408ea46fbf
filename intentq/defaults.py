"""Defaults and limits, each defined once; settings, stores and transports import them."""

from __future__ import annotations

# Embedded default: SQLite files in the working directory, nothing else to run.
DEFAULT_DB_URL = "sqlite:///intentq.db"
DEFAULT_BROKER_URL = "sqla+sqlite:///intentq-broker.db"
DEFAULT_TTL = 24 * 3600.0  # keys outlive SQS FIFO's 5-minute dedup window by far
DEFAULT_LEASE = 300.0  # 5 minutes, extended by a heartbeat while a tool runs
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_MAX = 300.0
# SQS's limit for one message (body and attributes) since 2025, and for the bodies of one
# batch call; intentq's default size limit on every transport.
MAX_MESSAGE_BYTES = 1024 * 1024
# SQS: threads; two batches of 10 in flight, so a receive never waits for a batch to finish.
DEFAULT_SQS_CONCURRENCY = 20
# Celery: worker processes, each running one task at a time.
DEFAULT_CELERY_CONCURRENCY = 8
DEFAULT_MAX_RECEIVES = 50  # broker redeliveries before a message is dead-lettered regardless
# The transactional outbox: rows a relay sends per transaction (ten SQS batches) ...
DEFAULT_OUTBOX_BATCH = 100
# ... how long a silent SQLite relay keeps the table before another takes over ...
DEFAULT_OUTBOX_LEASE = 30.0
# ... and how long sent rows are kept for audit (7 days).
DEFAULT_OUTBOX_RETENTION = 7 * 24 * 3600.0
