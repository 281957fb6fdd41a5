"""Alembic environment and revisions for the SQL store (run through :mod:`openkms.storage.migrate`)."""
