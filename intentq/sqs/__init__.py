"""Amazon SQS plumbing, the one place SQS is spoken: the client (``client``), how its failures
are sorted (``errors``), queue names, URLs, limits and batched calls (``queues``), and sending
(``send``). The producer, the SQS consumer and the SQS dead-letter queue all go through it.

Nothing here imports boto3 until a client is made.
"""
