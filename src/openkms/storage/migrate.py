"""Schema migrations, run programmatically (no ``alembic.ini`` needed).

``upgrade_database(url)`` brings a SQLite file or a PostgreSQL database (optionally one schema of it) to
the newest revision. The whole upgrade runs in one transaction that also serialises concurrent callers:
``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, ProgrammingError

from openkms.storage.sql import _check_schema, create_sql_engine

__all__ = ["MIGRATIONS_DIR", "current_revision", "head_revision", "upgrade_database"]

MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")
# arbitrary constant identifying "openkms schema migration" among advisory locks
_PG_MIGRATION_LOCK: Final = 0x6F6B6D73


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _create_schema(url: str, schema: str) -> None:
    engine = create_sql_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{_check_schema(schema)}"')
    except (IntegrityError, ProgrammingError):  # pragma: no cover - lost a race with a concurrent creator
        pass
    finally:
        engine.dispose()


def upgrade_database(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>``. With ``schema`` (PostgreSQL only), the schema is created if
    missing and all tables, including ``alembic_version``, live in it."""
    engine = create_sql_engine(url, schema=schema, pool_size=1)
    try:
        if schema is not None:
            _create_schema(url, schema)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            command.upgrade(_config(conn), revision)
    finally:
        engine.dispose()


def current_revision(url: str, *, schema: str | None = None) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    engine = create_sql_engine(url, schema=schema, pool_size=1)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
