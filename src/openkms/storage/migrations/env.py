"""Alembic environment.

:func:`openkms.storage.migrate.upgrade_database` hands over an open connection (already inside a
transaction, already pointed at the right PostgreSQL schema) in ``config.attributes["connection"]``.
Running the ``alembic`` command line against an ini file with ``sqlalchemy.url`` also works, and
``--sql`` (offline) mode renders the DDL for the configured URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from openkms.storage.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite DDL is transactional too once the driver stops managing BEGIN itself (see sql.py).
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url configured")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
