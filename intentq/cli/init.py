"""``intentq init``: create the tables and queues the settings name."""

from __future__ import annotations

from intentq.cli.common import JsonFlag, TransportOpt, check_broker, load_settings
from intentq.cli.output import console, examples, print_json, table

EPILOG = examples(
    "intentq init",
    "INTENTQ_TRANSPORT=sqs INTENTQ_SQS_QUEUE=orders intentq init --json",
)


def init(transport: TransportOpt = None, as_json: JsonFlag = False) -> None:
    """Create the store's and the DLQ's tables and, for SQS, the queue and its DLQ.

    The SQS queue gets a redrive policy to its DLQ after INTENTQ_MAX_RECEIVES + 5 receives.
    Safe to run again: what exists is left as it is.
    """
    from intentq.ops.init import init_resources

    steps = init_resources(check_broker(load_settings(transport=transport)))
    if as_json:
        print_json({"steps": [step.__dict__ for step in steps]})
        return
    rows = [(step.what, step.target, step.detail) for step in steps]
    console().print(table("intentq init", ("what", "where", "state"), rows))
