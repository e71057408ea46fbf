"""The dead-letter table's Alembic script directory (``env.py`` and ``versions/``)."""
