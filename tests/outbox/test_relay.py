"""Relaying: several relays on one table, FIFO order, wake-ups, outages, failed rows."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from intentq.errors import OutboxUnavailable
from intentq.outbox import Outbox, Relay
from intentq.outbox import relay as relay_module
from intentq.outbox.ops import purge_sent, retry_failed, stats
from intentq.outbox.relay import Totals
from tests.outbox.conftest import Place, drain
from tests.outbox.proxy import Proxy
from tests.support.net import free_port, wait_until
from tests.support.services import SqsServer


def write(place: Place, count: int, *, prefix: str = "k", queue: str | None = None,
          meta: Callable[[int], dict[str, Any]] | None = None) -> list[str]:  # fmt: skip
    """``count`` intents, each in a transaction of its own with the application's row."""
    outbox = Outbox(place.settings)
    keys = []
    for i in range(count):
        key = f"{prefix}-{i}"
        with place.engine.begin() as conn:
            conn.execute(sa.insert(place.decisions).values(key=key, what="book"))
            outbox.add(conn, "book_slot", {"n": i}, key=key, meta=meta(i) if meta else None,
                       queue=queue)  # fmt: skip
        keys.append(key)
    return keys


@contextmanager
def running(relay: Relay) -> Iterator[threading.Event]:
    """``relay.run`` in a thread for the block; its error, if any, is raised after."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            relay.run(stop)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(15)
        relay.close()
    assert not thread.is_alive(), "the relay did not stop"
    if failure:
        raise failure[0]


def sent_all(place: Place, count: int, timeout: float = 20) -> None:
    wait_until(lambda: place.states().get("sent", 0) == count, timeout=timeout,
               what=f"{count} rows sent")  # fmt: skip


def test_two_relays_on_one_table_send_each_row_once(place: Place, sqs: Any) -> None:
    settings = place.with_(outbox_batch_size=20)
    keys = write(place, 150)
    first, second = Relay(settings, name="first"), Relay(settings, name="second")
    with running(first), running(second):
        sent_all(place, 150)
    got = drain(sqs, str(place.queue_url), 150)
    assert sorted(i.key for i in got) == sorted(keys)  # each row exactly once
    assert first.totals.sent + second.totals.sent == 150
    if place.dialect == "postgresql":
        assert first.totals.sent and second.totals.sent  # the work was shared
    else:
        assert 0 in (first.totals.sent, second.totals.sent)  # SQLite: one relay at a time


def test_two_relays_keep_each_fifo_groups_order(
    dialect: str, make_place: Callable[..., Place], sqs_server: SqsServer, sqs: Any
) -> None:
    queue_url = sqs_server.new_queue(fifo=True)
    place = make_place(dialect, transport="sqs", sqs_queue=queue_url,
                       sqs_endpoint_url=sqs_server.endpoint_url, outbox_batch_size=7)  # fmt: skip
    write(place, 60, meta=lambda i: {"group": f"g{i % 3}"})
    with running(Relay(place.settings)), running(Relay(place.settings)):
        sent_all(place, 60)
    got = drain(sqs, queue_url, 60)
    assert len(got) == 60
    for group in ("g0", "g1", "g2"):
        order = [i.args["n"] for i in got if i.meta["group"] == group]
        assert order == sorted(order) and len(order) == 20


def test_a_notify_wakes_the_relay_long_before_its_poll(
    make_place: Callable[..., Place], sqs_server: SqsServer
) -> None:
    place = make_place("postgresql", transport="sqs", sqs_queue=sqs_server.new_queue(),
                       sqs_endpoint_url=sqs_server.endpoint_url,
                       outbox_poll_interval=30.0)  # fmt: skip
    with running(Relay(place.settings)):
        time.sleep(0.5)  # the relay is idle, listening
        started = time.monotonic()
        write(place, 1)
        sent_all(place, 1, timeout=10)
        assert time.monotonic() - started < 3.0


def test_a_broker_outage_leaves_rows_pending_and_is_logged_once(
    make_place: Callable[..., Place], tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(relay_module, "OUTAGE_MAX", 1.0)  # retry often: the test is short
    server = SqsServer(free_port(), tmp_path / "ministack.log")  # of this test's own
    server.start()
    client = server.client()
    try:
        url = client.create_queue(QueueName="outage")["QueueUrl"]
        place = make_place("postgresql", transport="sqs", sqs_queue=url,
                           sqs_endpoint_url=server.endpoint_url)  # fmt: skip
        caplog.set_level(logging.INFO, logger="intentq.outbox")
        with running(Relay(place.settings)):
            write(place, 5, prefix="before")
            sent_all(place, 5)
            server.stop()  # the broker goes away mid-run
            write(place, 20, prefix="during")
            time.sleep(1.5)  # several passes fail meanwhile
            assert place.states() == {"sent": 5, "pending": 20}  # nothing lost, nothing failed
            server.start()  # it comes back (empty: ministack keeps queues in memory)
            client.create_queue(QueueName="outage")
            sent_all(place, 25, timeout=30)
        got = drain(client, url, 20)
    finally:
        client.close()
        server.stop()
    assert sorted(i.key for i in got) == sorted(f"during-{i}" for i in range(20))
    outages = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(outages) == 1, [r.getMessage() for r in outages]
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_database_outage_stops_the_relay(
    make_place: Callable[..., Place], sqs_server: SqsServer, pg_url: str
) -> None:
    place = make_place("postgresql", transport="sqs", sqs_queue=sqs_server.new_queue(),
                       sqs_endpoint_url=sqs_server.endpoint_url)  # fmt: skip
    proxy = Proxy(5432)
    through = pg_url.replace(":5432/", f":{proxy.port}/")
    relay = Relay(place.with_(outbox_url=through))
    with pytest.raises(OutboxUnavailable), running(relay):
        write(place, 3)
        sent_all(place, 3)
        proxy.cut()
        write(place, 3, prefix="after")
        time.sleep(2)  # the relay's next pass finds the database gone and stops
    assert place.states() == {"sent": 3, "pending": 3}


def test_rows_that_cannot_be_sent_fail_with_their_error(place: Place, sqs: Any) -> None:
    write(place, 2, prefix="nowhere", queue="no-such-queue")
    with Relay(place.settings) as relay:
        relay.drain()
    write(place, 1, prefix="big")
    with Relay(place.with_(max_message_bytes=100)) as relay:  # the limit lowered meanwhile
        relay.drain()
    counted = stats(place.db)
    assert (counted.failed, counted.pending, counted.sent) == (3, 0, 0)
    c = place.db.table.c
    with place.engine.connect() as conn:
        errors = {key: (i, e) for i, key, e in conn.execute(sa.select(c.id, c.key, c.error))}
    assert "unknown queue" in errors["nowhere-0"][1] and "too_large" in errors["big-0"][1]
    # The operator raises the limit again and sends that row again: it goes.
    assert retry_failed(place.db, [errors["big-0"][0]]) == 1
    with Relay(place.settings) as relay:
        assert relay.drain().sent == 1
    assert [i.key for i in drain(sqs, str(place.queue_url), 1)] == ["big-0"]


def test_sent_rows_are_kept_for_the_retention_period_then_deleted(place: Place) -> None:
    write(place, 5)
    with Relay(place.with_(outbox_retention=3600)) as relay:
        relay.drain()
    assert purge_sent(place.db, 3600) == 0 and place.states() == {"sent": 5}
    with running(Relay(place.with_(outbox_retention=0))):  # the relay purges at its start
        wait_until(lambda: place.states() == {}, timeout=10, what="sent rows purged")


def test_a_relay_stopped_by_its_flag_finishes_the_batch_in_flight(place: Place) -> None:
    write(place, 10)
    relay = Relay(place.with_(outbox_batch_size=100))
    stop = threading.Event()
    send = relay.sender.send

    def send_then_stop(rows: Any) -> Any:
        stop.set()  # SIGTERM arrives while the batch is out
        return send(rows)

    relay.sender.send = send_then_stop  # type: ignore[method-assign]
    with relay:
        totals: Totals = relay.run(stop)
    assert totals.sent == 10 and place.states() == {"sent": 10}
