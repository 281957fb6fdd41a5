"""Storage fixtures (imported by the storage tests): SQL stores on SQLite and PostgreSQL.

PostgreSQL: one fresh, randomly named schema per test session in the database named by
``OPENKMS_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), migrated once and
dropped at the end; tables are emptied before each test. An unreachable server skips the PostgreSQL cases
locally but fails them when ``CI=true``: CI must never silently skip them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from openkms.storage.migrate import upgrade_database
from openkms.storage.sql import SqlStore, normalize_url
from openkms.storage.tables import metadata

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's store lives; ``open()`` gives another, independent ``SqlStore`` on the same data."""

    dialect: str
    url: str
    schema: str | None = None

    def open(self, **kwargs: Any) -> SqlStore:
        return SqlStore(self.url, schema=self.schema, **kwargs)


def pg_url() -> str:
    return os.environ.get("OPENKMS_TEST_PG_URL", DEFAULT_PG_URL)


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unreachable: {reason}")


@pytest.fixture(scope="session")
def pg_session_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a migrated schema private to this test session (and xdist worker)."""
    url = pg_url()
    admin = create_engine(normalize_url(url), connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        _pg_unavailable(str(exc).splitlines()[0])
    schema = f"okms_test_{secrets.token_hex(6)}"
    try:
        upgrade_database(url, schema=schema)
        yield url, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _truncate_pg(url: str, schema: str) -> None:
    engine = create_engine(normalize_url(url))
    try:
        names = ", ".join(f'"{schema}"."{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names}"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    """A freshly migrated, empty database on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'openkms.db'}"
        upgrade_database(url)
        return StoreTarget("sqlite", url)
    url, schema = request.getfixturevalue("pg_session_schema")
    _truncate_pg(url, schema)
    return StoreTarget("postgresql", url, schema)


@pytest.fixture
def open_store(store_target: StoreTarget) -> Iterator[Callable[..., SqlStore]]:
    """Factory for extra stores on the test's database; all are closed at teardown."""
    opened: list[SqlStore] = []

    def factory(**kwargs: Any) -> SqlStore:
        store = store_target.open(**kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., SqlStore]) -> SqlStore:
    return open_store()
