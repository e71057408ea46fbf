"""The settler: verdicts of a batch share one SQS call, and never wait for a straggler."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from intentq.consumers.sqs.receiver import Received, SqsQueue
from intentq.consumers.sqs.settle import Settler
from tests.sqs.conftest import queue_depth
from tests.support.net import wait_until
from tests.support.services import SqsServer


def received(sqs: Any, url: str, count: int) -> list[Received]:
    """``count`` messages sent to the queue, then received (hidden for a minute)."""
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, min(count, start + 10))
            ],
        )
    queue = SqsQueue(sqs, url)
    messages: list[Received] = []
    while len(messages) < count:
        messages += queue.receive(count - len(messages), 1, 60)
    return messages


def counting(sqs: Any) -> Counter[str]:
    """SQS calls the client makes from now on, by operation name."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **kwargs: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    sqs.meta.events.register("before-call.sqs", count)
    return calls


def test_the_verdicts_of_a_batch_go_in_one_call(sqs_server: SqsServer, sqs: Any) -> None:
    url = sqs_server.new_queue()
    messages = received(sqs, url, 10)
    # A long linger: only the last expected verdict can have triggered the call.
    settler = Settler(SqsQueue(sqs, url), linger=30, max_linger=30)
    calls = counting(sqs)
    settler.expect(len(messages))
    threads = [threading.Thread(target=settler.delete, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wait_until(lambda: settler.stats.deleted == 10, what="the batch deleted")
    assert calls == {"DeleteMessageBatch": 1}
    assert queue_depth(sqs, url) == (0, 0)
    settler.close(10)


def test_a_batch_short_of_ten_is_sent_when_its_last_verdict_comes(
    sqs_server: SqsServer, sqs: Any
) -> None:
    url = sqs_server.new_queue()
    messages = received(sqs, url, 4)
    settler = Settler(SqsQueue(sqs, url), linger=30, max_linger=30)
    settler.expect(4)
    settler.delete(messages[0])
    settler.release(messages[1], 0)
    settler.delete(messages[2])
    settler.delete(messages[3])

    wait_until(lambda: settler.stats.deleted == 3, what="the deletes sent")
    wait_until(lambda: settler.stats.released == 1, what="the release sent")
    assert queue_depth(sqs, url) == (1, 0)
    settler.close(10)


def test_verdicts_do_not_wait_for_a_straggler(sqs_server: SqsServer, sqs: Any) -> None:
    url = sqs_server.new_queue()
    first, second, straggler = received(sqs, url, 3)
    settler = Settler(SqsQueue(sqs, url), linger=0.05, max_linger=0.2)
    settler.expect(3)
    settler.delete(first)
    settler.delete(second)

    # The third message is still being worked on: the two finished ones go without it.
    wait_until(lambda: settler.stats.deleted == 2, what="the finished ones deleted")
    assert queue_depth(sqs, url) == (0, 1)
    settler.delete(straggler)
    assert settler.flush(10)
    assert settler.stats.deleted == 3
    settler.close(10)
