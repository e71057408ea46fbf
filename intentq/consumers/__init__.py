"""Transports: each turns its messages into deliveries and carries out the executor's
decisions, one subpackage each (``sqs``, ``celery``, and the in-memory ``stub``)."""
