"""The outbox table's Alembic script directory (``env.py`` and ``versions/``)."""
