"""The SQL dedup table's Alembic script directory (``env.py`` and ``versions/``)."""
