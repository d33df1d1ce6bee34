"""Alembic revisions of the gateway's store (see store/schema.py for the head state)."""
