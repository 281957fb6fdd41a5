"""``Store`` implementation on SQLAlchemy Core, for SQLite (file) and PostgreSQL (psycopg 3).

Transactions
    SQLite: the ``sqlite3`` driver's own transaction management is switched off (``isolation_level =
    None``) and every transaction starts with ``BEGIN IMMEDIATE`` from the engine ``begin`` event, so a
    writer takes the write lock up front and two processes can never deadlock upgrading a shared lock
    (``SQLITE_BUSY``); readers in WAL mode are not blocked. PostgreSQL runs at READ COMMITTED: the
    compare-and-set ``UPDATE ... WHERE version = :expected`` and the ``INSERT ... ON CONFLICT`` upserts are
    atomic on their own; the one explicit row lock is ``get_key`` in a write transaction (``FOR UPDATE``),
    so concurrent writers of one key take turns instead of failing the compare-and-set.

Statements are built once per store with bind parameters, so SQLAlchemy's compiled cache serves every
call after the first.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    Connection,
    CursorResult,
    Delete,
    Engine,
    Executable,
    Integer,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry

from openkms.storage.base import (
    AccessKeyRecord,
    AliasRecord,
    ConflictError,
    DuplicateError,
    GrantRecord,
    KeyRecord,
    KeyState,
    MaterialRecord,
    MaterialState,
    RootKeyRecord,
    TagRecord,
)
from openkms.storage.sql_identities import IdentityStatements, IdentityTxMixin
from openkms.storage.tables import (
    access_keys,
    aliases,
    audit_signing_keys,
    generation,
    grants,
    keys,
    leases,
    materials,
    root_keys,
    tags,
)

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table

    from openkms.storage.base import Store, Tx

__all__ = ["SQLITE_SYNCHRONOUS_LEVELS", "SqlStore", "SqlTx", "create_sql_engine", "normalize_url"]

SQLITE_SYNCHRONOUS_LEVELS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


# ---------------------------------------------------------------------------------------------- engines


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` URLs are pointed at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _check_schema(schema: str) -> str:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def _ensure_private_file(path: str) -> None:
    """Create the SQLite database file with mode 0600 if it does not exist yet. SQLite creates the
    ``-wal`` and ``-shm`` files with the permissions of the database file."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def create_sql_engine(
    url: str | URL,
    *,
    schema: str | None = None,
    sqlite_synchronous: str = "FULL",
    pool_size: int = 8,
) -> Engine:
    """An engine set up the way the store needs it (pragmas, BEGIN IMMEDIATE, search_path).

    Used by :class:`SqlStore` and by the migrations, so both see the same connection settings.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise ValueError("the schema option is only supported for PostgreSQL")
        return _sqlite_engine(parsed, sqlite_synchronous, pool_size)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError("PostgreSQL is supported through psycopg 3 only (postgresql+psycopg://)")
        return _postgres_engine(parsed, schema, pool_size)
    raise ValueError(f"unsupported database backend {backend!r}")


def _sqlite_engine(url: URL, synchronous: str, pool_size: int) -> Engine:
    level = synchronous.upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(f"sqlite_synchronous must be one of {sorted(SQLITE_SYNCHRONOUS_LEVELS)}")
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query.get("mode") == "memory":
        raise ValueError("SQLite store needs a plain database file path (sqlite:///path/to/file.db)")
    _ensure_private_file(path)
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=30)

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # hand transaction control to SQLAlchemy (see the "begin" listener below)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {level}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        # Writers take the database lock up front (no deadlocking lock upgrades); readers do not, and in
        # WAL mode they never wait for a writer.
        if conn.get_execution_options().get(_READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect, insert=True)
    event.listen(engine, "begin", on_begin)
    return engine


_READ_ONLY_OPTION: Final = "openkms_read_only"


class _SqliteWriteLock:
    """Serialises SQLite write transactions of all threads and processes of one node.

    SQLite's own busy handler waits by sleeping with growing back-off, which caps a contended database
    at a few hundred commits per second. Queuing on a thread lock and an ``flock`` instead hands the
    database to the next writer the moment the previous one commits.
    """

    def __init__(self, database_path: str) -> None:
        self.thread_lock = threading.Lock()
        self._path = database_path + ".write-lock"
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock, open(self._path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_WRITE_LOCKS: dict[str, _SqliteWriteLock] = {}
_LOCK_OF_NAME: dict[str, _SqliteWriteLock] = {}  # database name as configured -> its lock (by real path)
_WRITE_LOCKS_GUARD = threading.Lock()


# Forking while another thread of this process is inside a write transaction (the master's background
# jobs or audit writer, when the supervisor forks a worker) would hand the child SQLite's in-process lock
# bookkeeping of that open transaction: the child's own connections would then find the database
# "locked" for good.  So a fork waits until no thread here is writing (and no new write starts until
# the fork is done), and the child starts with fresh locks.
_FORK_WAIT = 10.0  # seconds; a writer stuck longer does not block the fork (the child still gets new locks)
_held_for_fork: list[threading.Lock] = []


def _quiesce_writers_before_fork() -> None:
    if not _WRITE_LOCKS_GUARD.acquire(timeout=_FORK_WAIT):
        return
    _held_for_fork.append(_WRITE_LOCKS_GUARD)
    for lock in list(_WRITE_LOCKS.values()):
        if lock.thread_lock.acquire(timeout=_FORK_WAIT):
            _held_for_fork.append(lock.thread_lock)


def _resume_writers_after_fork() -> None:
    while _held_for_fork:
        _held_for_fork.pop().release()


def _fresh_write_locks_after_fork() -> None:
    global _WRITE_LOCKS_GUARD
    _held_for_fork.clear()
    _WRITE_LOCKS.clear()  # the child opens its own (the flock is per open file)
    _LOCK_OF_NAME.clear()  # (its thread locks were held for the fork)
    _WRITE_LOCKS_GUARD = threading.Lock()


os.register_at_fork(
    before=_quiesce_writers_before_fork,
    after_in_parent=_resume_writers_after_fork,
    after_in_child=_fresh_write_locks_after_fork,
)


def sqlite_write_lock(engine: Engine) -> AbstractContextManager[None]:
    """The node-wide writer queue of a SQLite database (a no-op for other databases).

    Every writer of the file must hold it around its write transaction, the audit log's included, or
    writers fall back to SQLite's sleeping busy handler whenever they meet.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database:
        return nullcontext()
    lock = _LOCK_OF_NAME.get(database)  # the hot path: no realpath (several lstat calls) per transaction
    if lock is None:
        path = os.path.realpath(database)
        with _WRITE_LOCKS_GUARD:
            lock = _WRITE_LOCKS.get(path)
            if lock is None:
                lock = _WRITE_LOCKS[path] = _SqliteWriteLock(path)
        _LOCK_OF_NAME[database] = lock
    return lock.held()


def _postgres_engine(url: URL, schema: str | None, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    if schema is not None:
        search_path = f'SET SESSION search_path TO "{_check_schema(schema)}"'

        def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(search_path)
            finally:
                cursor.close()
            dbapi_connection.autocommit = autocommit

        # insert=True: run before the dialect's first-connect initialisation, which records the default
        # schema name that reflection (and Alembic) rely on
        event.listen(engine, "connect", on_connect, insert=True)
    return engine


# ------------------------------------------------------------------------------------------ statements


def _p(name: str) -> Any:
    return bindparam(f"p_{name}")


def _where(table: Table, *names: str) -> ColumnElement[bool]:
    return and_(*(table.c[n] == _p(n) for n in names))


_KEY_FIELDS: Final = tuple(f.name for f in fields(KeyRecord))
_KEY_PK: Final = ("account", "region", "key_id")
_KEY_STATE_INDEX: Final = _KEY_FIELDS.index("state")
_MATERIAL_FIELDS: Final = tuple(f.name for f in fields(MaterialRecord))
_MATERIAL_STATE_INDEX: Final = _MATERIAL_FIELDS.index("state")
_ALIAS_FIELDS: Final = tuple(f.name for f in fields(AliasRecord))
_ACCESS_KEY_FIELDS: Final = tuple(f.name for f in fields(AccessKeyRecord))
_ROOT_KEY_FIELDS: Final = tuple(f.name for f in fields(RootKeyRecord))
_GRANT_FIELDS: Final = tuple(f.name for f in fields(GrantRecord))
_GRANT_OPERATIONS_INDEX: Final = _GRANT_FIELDS.index("operations")


class _Statements:
    """Every statement the store runs, built once per dialect."""

    def __init__(self, dialect: str) -> None:
        if dialect == "postgresql":
            insert: Any = pg_dialect.insert
        elif dialect == "sqlite":
            insert = sqlite_dialect.insert
        else:  # pragma: no cover - create_sql_engine rejects other backends
            raise ValueError(dialect)
        limit = bindparam("p_limit", type_=Integer)

        def plain_insert(table: Table, names: Sequence[str]) -> Any:
            return (
                insert(table)
                .values({n: _p(n) for n in names})
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)
            )

        # keys
        key_cols = [keys.c[n] for n in _KEY_FIELDS]
        self.get_key: Select[Any] = select(*key_cols).where(_where(keys, *_KEY_PK))
        # PostgreSQL writers read the key they are about to change with a row lock (see ``SqlTx.get_key``);
        # SQLite writers already hold the database's write lock.
        self.get_key_for_update: Select[Any] = (
            self.get_key.with_for_update() if dialect == "postgresql" else self.get_key
        )
        self.insert_key = plain_insert(keys, _KEY_FIELDS)
        self.update_key: Update = (
            update(keys)
            .where(_where(keys, *_KEY_PK), keys.c.version == bindparam("p_expected_version"))
            .values({n: _p(n) for n in _KEY_FIELDS if n not in _KEY_PK})
        )
        self.delete_key: Delete = delete(keys).where(_where(keys, *_KEY_PK))
        self.delete_key_aliases: Delete = delete(aliases).where(
            aliases.c.account == _p("account"),
            aliases.c.region == _p("region"),
            aliases.c.target_key_id == _p("key_id"),
        )
        self.delete_key_tags: Delete = delete(tags).where(_where(tags, *_KEY_PK))
        # materials are per account and key id (multi-region replicas share them): drop them with the
        # last key row carrying that id
        self.delete_orphan_materials: Delete = delete(materials).where(
            _where(materials, "account", "key_id"),
            ~exists().where(keys.c.account == materials.c.account, keys.c.key_id == materials.c.key_id),
        )
        listed = select(*key_cols).where(keys.c.account == _p("account"), keys.c.region == _p("region"))
        self.list_keys_first: Select[Any] = listed.order_by(keys.c.key_id).limit(limit)
        self.list_keys_after: Select[Any] = (
            listed.where(keys.c.key_id > _p("after")).order_by(keys.c.key_id).limit(limit)
        )
        self.keys_due_for_rotation: Select[Any] = (
            select(*key_cols)
            .where(
                keys.c.state == KeyState.ENABLED.value,
                keys.c.rotation_enabled.is_(True),
                keys.c.next_rotation_at <= _p("now"),
            )
            .order_by(keys.c.next_rotation_at, keys.c.account, keys.c.region, keys.c.key_id)
            .limit(limit)
        )
        self.keys_due_for_deletion: Select[Any] = (
            select(*key_cols)
            .where(
                keys.c.state == KeyState.PENDING_DELETION.value,
                keys.c.deletion_date <= _p("now"),
            )
            .order_by(keys.c.deletion_date, keys.c.account, keys.c.region, keys.c.key_id)
            .limit(limit)
        )
        self.count_keys: Select[Any] = (
            select(func.count()).select_from(keys).where(_where(keys, "account", "region"))
        )

        # materials
        material_cols = [materials.c[n] for n in _MATERIAL_FIELDS]
        next_seq = (
            select(func.coalesce(func.max(materials.c.seq), 0) + 1)
            .where(_where(materials, "account", "key_id"))
            .scalar_subquery()
        )
        self.insert_material = (
            insert(materials)
            .values({**{n: _p(n) for n in _MATERIAL_FIELDS}, "seq": next_seq})
            .on_conflict_do_nothing()
            .execution_options(preserve_rowcount=True)
        )
        self.get_material: Select[Any] = select(*material_cols).where(
            _where(materials, "account", "key_id", "material_id")
        )
        self.list_materials: Select[Any] = (
            select(*material_cols)
            .where(_where(materials, "account", "key_id"))
            .order_by(materials.c.created_at, materials.c.seq, materials.c.material_id)
        )
        self.set_material_state: Update = (
            update(materials)
            .where(_where(materials, "account", "key_id", "material_id"))
            .values(state=_p("state"))
        )
        # imported key material
        material_pk = ("account", "key_id", "material_id")
        self.replace_material: Update = (
            update(materials)
            .where(_where(materials, *material_pk))
            .values({n: _p(n) for n in _MATERIAL_FIELDS if n not in material_pk})
        )
        self.materials_due_for_expiry: Select[Any] = (
            select(*key_cols, *material_cols)
            .join(keys, and_(keys.c.account == materials.c.account, keys.c.key_id == materials.c.key_id))
            .where(materials.c.valid_to <= _p("now"), materials.c.ekt.is_not(None))
            .order_by(materials.c.valid_to, materials.c.account, materials.c.key_id)
            .limit(limit)
        )

        # aliases
        alias_cols = [aliases.c[n] for n in _ALIAS_FIELDS]
        alias_pk = ("account", "region", "name")
        self.get_alias: Select[Any] = select(*alias_cols).where(_where(aliases, *alias_pk))
        self.insert_alias = plain_insert(aliases, _ALIAS_FIELDS)
        self.update_alias: Update = (
            update(aliases)
            .where(_where(aliases, *alias_pk))
            .values(target_key_id=_p("target_key_id"), updated_at=_p("updated_at"))
        )
        self.delete_alias: Delete = delete(aliases).where(_where(aliases, *alias_pk))
        self.list_aliases: dict[tuple[bool, bool], Select[Any]] = {}
        for by_key in (False, True):
            for after in (False, True):
                stmt = select(*alias_cols).where(_where(aliases, "account", "region"))
                if by_key:
                    stmt = stmt.where(aliases.c.target_key_id == _p("key_id"))
                if after:
                    stmt = stmt.where(aliases.c.name > _p("after"))
                self.list_aliases[by_key, after] = stmt.order_by(aliases.c.name).limit(limit)
        self.count_aliases_for_key: Select[Any] = (
            select(func.count())
            .select_from(aliases)
            .where(_where(aliases, "account", "region"), aliases.c.target_key_id == _p("key_id"))
        )

        # tags
        self.list_tags: Select[Any] = (
            select(tags.c.tag_key, tags.c.tag_value).where(_where(tags, *_KEY_PK)).order_by(tags.c.tag_key)
        )
        tag_insert = insert(tags).values({n: _p(n) for n in (*_KEY_PK, "tag_key", "tag_value")})
        self.put_tag = tag_insert.on_conflict_do_update(
            index_elements=[tags.c.account, tags.c.region, tags.c.key_id, tags.c.tag_key],
            set_={"tag_value": tag_insert.excluded.tag_value},
        )
        self.delete_tags: Delete = delete(tags).where(
            _where(tags, *_KEY_PK), tags.c.tag_key.in_(bindparam("p_tag_keys", expanding=True))
        )

        # access keys
        access_cols = [access_keys.c[n] for n in _ACCESS_KEY_FIELDS]
        self.get_access_key: Select[Any] = select(*access_cols).where(_where(access_keys, "access_key_id"))
        self.insert_access_key = plain_insert(access_keys, _ACCESS_KEY_FIELDS)
        self.delete_access_key: Delete = delete(access_keys).where(_where(access_keys, "access_key_id"))
        self.list_access_keys: Select[Any] = select(*access_cols).order_by(access_keys.c.access_key_id)

        # root keys
        root_cols = [root_keys.c[n] for n in _ROOT_KEY_FIELDS]
        self.get_root_key: Select[Any] = select(*root_cols).where(_where(root_keys, "version"))
        self.latest_root_key: Select[Any] = select(*root_cols).order_by(root_keys.c.version.desc()).limit(1)
        self.insert_root_key = plain_insert(root_keys, _ROOT_KEY_FIELDS)

        # coordination: both upserts are single atomic statements on both dialects
        lease_insert = insert(leases).values(name=_p("name"), owner=_p("owner"), expires_at=_p("expires_at"))
        self.acquire_lease = lease_insert.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"owner": lease_insert.excluded.owner, "expires_at": lease_insert.excluded.expires_at},
            where=or_(leases.c.expires_at <= _p("now"), leases.c.owner == lease_insert.excluded.owner),
        ).returning(leases.c.name)
        generation_insert = insert(generation).values(id=literal(1), n=literal(1))
        self.bump_generation = generation_insert.on_conflict_do_update(
            index_elements=[generation.c.id], set_={"n": generation.c.n + 1}
        ).returning(generation.c.n)
        self.get_generation: Select[Any] = select(generation.c.n).where(generation.c.id == 1)

        # identities (accounts, IAM users and roles): storage/sql_identities.py
        self.identities = IdentityStatements(insert)
        # grants
        self.grant_cols = [grants.c[n] for n in _GRANT_FIELDS]
        self.insert_grant = plain_insert(grants, _GRANT_FIELDS)
        self.get_grant: Select[Any] = select(*self.grant_cols).where(_where(grants, "grant_id", *_KEY_PK))
        self.delete_grant: Delete = delete(grants).where(_where(grants, "grant_id", *_KEY_PK))
        self.delete_key_grants: Delete = delete(grants).where(_where(grants, *_KEY_PK))
        self.count_grants: Select[Any] = (
            select(func.count()).select_from(grants).where(_where(grants, *_KEY_PK))
        )
        # ListGrants / ListRetirableGrants: one statement per combination of filters, built on first use
        self._grant_lists: dict[tuple[str, ...], Select[Any]] = {}
        self._grant_lists_lock = threading.Lock()

    def grant_list(self, names: tuple[str, ...], after: bool, limited: bool) -> Select[Any]:
        """``SELECT`` grants where each named column equals its parameter, ordered by grant id."""
        cache_key = (*names, "|after" if after else "", "|limit" if limited else "")
        stmt = self._grant_lists.get(cache_key)
        if stmt is None:
            stmt = select(*self.grant_cols).where(_where(grants, *names))
            if after:
                stmt = stmt.where(grants.c.grant_id > _p("after"))
            stmt = stmt.order_by(grants.c.grant_id)
            if limited:
                stmt = stmt.limit(bindparam("p_limit", type_=Integer))
            with self._grant_lists_lock:
                self._grant_lists[cache_key] = stmt
        return stmt


# ----------------------------------------------------------------------------------------------- rows


def _values(row: Row[Any]) -> list[Any]:
    return list(row)


def _key_row(row: Sequence[Any]) -> KeyRecord:
    values = list(row)
    values[_KEY_STATE_INDEX] = KeyState(values[_KEY_STATE_INDEX])
    return KeyRecord(*values)


def _key_params(key: KeyRecord) -> dict[str, Any]:
    params = {f"p_{n}": getattr(key, n) for n in _KEY_FIELDS}
    params["p_state"] = key.state.value
    return params


def _material_row(row: Sequence[Any]) -> MaterialRecord:
    values = list(row)
    values[_MATERIAL_STATE_INDEX] = MaterialState(values[_MATERIAL_STATE_INDEX])
    return MaterialRecord(*values)


def _params(record: object, names: Sequence[str]) -> dict[str, Any]:
    return {f"p_{n}": getattr(record, n) for n in names}


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # psycopg unique_violation
        return True
    return getattr(orig, "sqlite_errorname", None) in (
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "SQLITE_CONSTRAINT_UNIQUE",
    )


# ------------------------------------------------------------------------------------------------ tx


class SqlTx(IdentityTxMixin):
    """The ``Tx`` of :class:`SqlStore`: repositories bound to one open connection/transaction."""

    __slots__ = ("_conn", "_q", "_write")

    def __init__(self, conn: Connection, statements: _Statements, *, write: bool = False) -> None:
        self._conn = conn
        self._q = statements
        self._write = write

    @property
    def connection(self) -> Connection:
        return self._conn

    def _identity_statements(self) -> IdentityStatements:
        return self._q.identities

    def _run(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
        return self._conn.execute(stmt, params)

    def _insert(self, stmt: Executable, params: Mapping[str, Any], what: str) -> None:
        try:
            result = self._conn.execute(stmt, params)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise DuplicateError(what) from exc
            raise
        if result.rowcount == 0:  # ON CONFLICT DO NOTHING skipped the row
            raise DuplicateError(what)

    # keys

    def get_key(self, account: str, region: str, key_id: str) -> KeyRecord | None:
        # In a write transaction the key is read to be changed (read, check its state, compare-and-set):
        # on PostgreSQL (READ COMMITTED) the row lock makes a concurrent writer of the same key wait and
        # then read the committed version, instead of failing its compare-and-set with ConflictError.
        stmt = self._q.get_key_for_update if self._write else self._q.get_key
        row = self._run(stmt, {"p_account": account, "p_region": region, "p_key_id": key_id}).first()
        return None if row is None else _key_row(row)

    def insert_key(self, key: KeyRecord) -> None:
        self._insert(self._q.insert_key, _key_params(key), f"key {key.account}/{key.region}/{key.key_id}")

    def update_key(self, key: KeyRecord, expected_version: int) -> KeyRecord:
        params = _key_params(key)
        params["p_version"] = expected_version + 1
        params["p_expected_version"] = expected_version
        if self._run(self._q.update_key, params).rowcount != 1:
            raise ConflictError(
                f"key {key.account}/{key.region}/{key.key_id} is not at version {expected_version}"
            )
        return replace(key, version=expected_version + 1)

    def delete_key(self, account: str, region: str, key_id: str) -> None:
        params = {"p_account": account, "p_region": region, "p_key_id": key_id}
        self._run(self._q.delete_key, params)
        self._run(self._q.delete_key_aliases, params)
        self._run(self._q.delete_key_tags, params)
        self._run(self._q.delete_key_grants, params)
        self._run(self._q.delete_orphan_materials, {"p_account": account, "p_key_id": key_id})

    def list_keys(self, account: str, region: str, after_key_id: str | None, limit: int) -> list[KeyRecord]:
        params: dict[str, Any] = {"p_account": account, "p_region": region, "p_limit": limit}
        if after_key_id is None:
            stmt = self._q.list_keys_first
        else:
            stmt = self._q.list_keys_after
            params["p_after"] = after_key_id
        return [_key_row(row) for row in self._run(stmt, params)]

    def keys_due_for_rotation(self, now: float, limit: int) -> list[KeyRecord]:
        return [
            _key_row(r) for r in self._run(self._q.keys_due_for_rotation, {"p_now": now, "p_limit": limit})
        ]

    def keys_due_for_deletion(self, now: float, limit: int) -> list[KeyRecord]:
        return [
            _key_row(r) for r in self._run(self._q.keys_due_for_deletion, {"p_now": now, "p_limit": limit})
        ]

    def count_keys(self, account: str, region: str) -> int:
        return int(self._run(self._q.count_keys, {"p_account": account, "p_region": region}).scalar_one())

    # key material

    def insert_material(self, material: MaterialRecord) -> None:
        params = _params(material, _MATERIAL_FIELDS)
        params["p_state"] = material.state.value
        self._insert(
            self._q.insert_material,
            params,
            f"material {material.account}/{material.key_id}/{material.material_id}",
        )

    def get_material(self, account: str, key_id: str, material_id: str) -> MaterialRecord | None:
        row = self._run(
            self._q.get_material, {"p_account": account, "p_key_id": key_id, "p_material_id": material_id}
        ).first()
        return None if row is None else _material_row(row)

    def list_materials(self, account: str, key_id: str) -> list[MaterialRecord]:
        rows = self._run(self._q.list_materials, {"p_account": account, "p_key_id": key_id})
        return [_material_row(row) for row in rows]

    def set_material_state(self, account: str, key_id: str, material_id: str, state: MaterialState) -> None:
        self._run(
            self._q.set_material_state,
            {"p_account": account, "p_key_id": key_id, "p_material_id": material_id, "p_state": state.value},
        )

    # imported key material

    def replace_material(self, material: MaterialRecord) -> None:
        params = _params(material, _MATERIAL_FIELDS)
        params["p_state"] = material.state.value
        self._run(self._q.replace_material, params)

    def materials_due_for_expiry(self, now: float, limit: int) -> list[tuple[KeyRecord, MaterialRecord]]:
        rows = self._run(self._q.materials_due_for_expiry, {"p_now": now, "p_limit": limit})
        n = len(_KEY_FIELDS)
        return [(_key_row(row[:n]), _material_row(row[n:])) for row in rows]

    # aliases

    def get_alias(self, account: str, region: str, name: str) -> AliasRecord | None:
        row = self._run(self._q.get_alias, {"p_account": account, "p_region": region, "p_name": name}).first()
        return None if row is None else AliasRecord(*_values(row))

    def insert_alias(self, alias: AliasRecord) -> None:
        self._insert(
            self._q.insert_alias,
            _params(alias, _ALIAS_FIELDS),
            f"alias {alias.account}/{alias.region}/{alias.name}",
        )

    def update_alias(self, alias: AliasRecord) -> None:
        self._run(
            self._q.update_alias, _params(alias, ("account", "region", "name", "target_key_id", "updated_at"))
        )

    def delete_alias(self, account: str, region: str, name: str) -> None:
        self._run(self._q.delete_alias, {"p_account": account, "p_region": region, "p_name": name})

    def list_aliases(
        self, account: str, region: str, key_id: str | None, after_name: str | None, limit: int
    ) -> list[AliasRecord]:
        params: dict[str, Any] = {"p_account": account, "p_region": region, "p_limit": limit}
        if key_id is not None:
            params["p_key_id"] = key_id
        if after_name is not None:
            params["p_after"] = after_name
        stmt = self._q.list_aliases[key_id is not None, after_name is not None]
        return [AliasRecord(*_values(row)) for row in self._run(stmt, params)]

    def count_aliases_for_key(self, account: str, region: str, key_id: str) -> int:
        result = self._run(
            self._q.count_aliases_for_key, {"p_account": account, "p_region": region, "p_key_id": key_id}
        )
        return int(result.scalar_one())

    # tags

    def list_tags(self, account: str, region: str, key_id: str) -> list[TagRecord]:
        rows = self._run(self._q.list_tags, {"p_account": account, "p_region": region, "p_key_id": key_id})
        return [TagRecord(*_values(row)) for row in rows]

    def put_tags(self, account: str, region: str, key_id: str, tags: Sequence[TagRecord]) -> None:
        if not tags:
            return
        # the last value wins when the same tag key appears twice in one call
        values = {tag.key: tag.value for tag in tags}
        self._conn.execute(
            self._q.put_tag,
            [
                {
                    "p_account": account,
                    "p_region": region,
                    "p_key_id": key_id,
                    "p_tag_key": k,
                    "p_tag_value": v,
                }
                for k, v in values.items()
            ],
        )

    def delete_tags(self, account: str, region: str, key_id: str, tag_keys: Sequence[str]) -> None:
        if not tag_keys:
            return
        self._run(
            self._q.delete_tags,
            {"p_account": account, "p_region": region, "p_key_id": key_id, "p_tag_keys": list(tag_keys)},
        )

    # credentials

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        row = self._run(self._q.get_access_key, {"p_access_key_id": access_key_id}).first()
        return None if row is None else AccessKeyRecord(*_values(row))

    def insert_access_key(self, record: AccessKeyRecord) -> None:
        params = _params(record, _ACCESS_KEY_FIELDS)
        if not record.principal_type:  # a key as created before identities: root, or an IAM user
            params["p_principal_type"] = "Root" if record.user_name == "root" else "User"
        self._insert(self._q.insert_access_key, params, f"access key {record.access_key_id}")

    def delete_access_key(self, access_key_id: str) -> bool:
        return self._run(self._q.delete_access_key, {"p_access_key_id": access_key_id}).rowcount > 0

    def list_access_keys(self) -> list[AccessKeyRecord]:
        return [AccessKeyRecord(*_values(row)) for row in self._run(self._q.list_access_keys)]

    # root key versions

    def get_root_key(self, version: int) -> RootKeyRecord | None:
        row = self._run(self._q.get_root_key, {"p_version": version}).first()
        return None if row is None else RootKeyRecord(*_values(row))

    def latest_root_key(self) -> RootKeyRecord | None:
        row = self._run(self._q.latest_root_key).first()
        return None if row is None else RootKeyRecord(*_values(row))

    def insert_root_key(self, record: RootKeyRecord) -> None:
        self._insert(
            self._q.insert_root_key, _params(record, _ROOT_KEY_FIELDS), f"root key v{record.version}"
        )

    # cluster coordination

    def try_acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> bool:
        params = {"p_name": name, "p_owner": owner, "p_expires_at": now + ttl, "p_now": now}
        return self._run(self._q.acquire_lease, params).first() is not None

    def bump_generation(self) -> int:
        return int(self._run(self._q.bump_generation).scalar_one())

    def get_generation(self) -> int:
        value = self._run(self._q.get_generation).scalar_one_or_none()
        return 0 if value is None else int(value)

    # root key rotation (rare operator commands: statements are built per call)

    def list_root_keys(self) -> list[RootKeyRecord]:
        cols = [root_keys.c[n] for n in _ROOT_KEY_FIELDS]
        return [RootKeyRecord(*_values(r)) for r in self._run(select(*cols).order_by(root_keys.c.version))]

    def replace_root_key(self, record: RootKeyRecord, expected_provider: str) -> None:
        stmt = (
            update(root_keys)
            .where(root_keys.c.version == record.version, root_keys.c.provider == expected_provider)
            .values(provider=record.provider, wrapped=record.wrapped)
        )
        if self._run(stmt).rowcount != 1:
            raise ConflictError(f"root key v{record.version} is not held by provider {expected_provider}")

    def count_wrapped_by_root_key(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for table, secret in (
            (materials, materials.c.ekt),
            (access_keys, access_keys.c.wrapped_secret),
            (audit_signing_keys, audit_signing_keys.c.wrapped_seed),
        ):
            version = table.c.root_key_version
            stmt = select(version, func.count()).where(secret.is_not(None)).group_by(version)
            for row in self._run(stmt):
                v, n = _values(row)
                counts[int(v)] = counts.get(int(v), 0) + int(n)
        return counts

    def materials_to_rewrap(self, below_version: int, limit: int) -> list[tuple[MaterialRecord, str]]:
        # The key spec is the same in every Region of a multi-Region key: any key row will do.
        spec = (
            select(keys.c.key_spec)
            .where(keys.c.account == materials.c.account, keys.c.key_id == materials.c.key_id)
            .limit(1)
            .scalar_subquery()
        )
        stmt = (
            select(*[materials.c[n] for n in _MATERIAL_FIELDS], spec)
            .where(materials.c.ekt.is_not(None), materials.c.root_key_version < below_version)
            .order_by(materials.c.account, materials.c.key_id, materials.c.material_id)
            .limit(limit)
        )
        out = []
        for row in self._run(stmt):
            values = list(row)
            key_spec = values.pop()
            if key_spec is not None:
                values[_MATERIAL_STATE_INDEX] = MaterialState(values[_MATERIAL_STATE_INDEX])
                out.append((MaterialRecord(*values), str(key_spec)))
        return out

    def rewrap_material(self, material: MaterialRecord, ekt: bytes, root_key_version: int) -> bool:
        stmt = (
            update(materials)
            .where(
                materials.c.account == material.account,
                materials.c.key_id == material.key_id,
                materials.c.material_id == material.material_id,
                materials.c.root_key_version == material.root_key_version,
                materials.c.ekt == material.ekt,
            )
            .values(ekt=ekt, root_key_version=root_key_version)
        )
        return bool(self._run(stmt).rowcount == 1)

    def access_keys_to_rewrap(self, below_version: int, limit: int) -> list[AccessKeyRecord]:
        stmt = (
            select(*[access_keys.c[n] for n in _ACCESS_KEY_FIELDS])
            .where(access_keys.c.root_key_version < below_version)
            .order_by(access_keys.c.access_key_id)
            .limit(limit)
        )
        return [AccessKeyRecord(*_values(r)) for r in self._run(stmt)]

    def rewrap_access_key(self, record: AccessKeyRecord, wrapped: bytes, root_key_version: int) -> bool:
        stmt = (
            update(access_keys)
            .where(
                access_keys.c.access_key_id == record.access_key_id,
                access_keys.c.root_key_version == record.root_key_version,
                access_keys.c.wrapped_secret == record.wrapped_secret,
            )
            .values(wrapped_secret=wrapped, root_key_version=root_key_version)
        )
        return bool(self._run(stmt).rowcount == 1)

    def signing_keys_to_rewrap(self, below_version: int, limit: int) -> list[tuple[str, bytes, int]]:
        t = audit_signing_keys
        stmt = (
            select(t.c.key_id, t.c.wrapped_seed, t.c.root_key_version)
            .where(t.c.root_key_version < below_version)
            .order_by(t.c.key_id)
            .limit(limit)
        )
        out: list[tuple[str, bytes, int]] = []
        for row in self._run(stmt):
            key_id, wrapped, version = _values(row)
            out.append((str(key_id), bytes(wrapped), int(version)))
        return out

    def rewrap_signing_key(
        self, key_id: str, old_wrapped: bytes, old_version: int, wrapped: bytes, root_key_version: int
    ) -> bool:
        t = audit_signing_keys
        stmt = (
            update(t)
            .where(t.c.key_id == key_id, t.c.root_key_version == old_version, t.c.wrapped_seed == old_wrapped)
            .values(wrapped_seed=wrapped, root_key_version=root_key_version)
        )
        return bool(self._run(stmt).rowcount == 1)

    # grants

    def insert_grant(self, grant: GrantRecord) -> None:
        params = _params(grant, _GRANT_FIELDS)
        params["p_operations"] = ",".join(grant.operations)
        self._insert(self._q.insert_grant, params, f"grant {grant.grant_id}")

    def get_grant(self, account: str, region: str, key_id: str, grant_id: str) -> GrantRecord | None:
        params = {"p_account": account, "p_region": region, "p_key_id": key_id, "p_grant_id": grant_id}
        row = self._run(self._q.get_grant, params).first()
        return None if row is None else _grant_row(row)

    def list_grants(
        self,
        account: str,
        region: str,
        key_id: str,
        *,
        grant_id: str | None = None,
        grantee_principal: str | None = None,
        grantee_service_principal: str | None = None,
        name: str | None = None,
        after_grant_id: str | None = None,
        limit: int | None = None,
    ) -> list[GrantRecord]:
        params: dict[str, Any] = {"p_account": account, "p_region": region, "p_key_id": key_id}
        given = {
            "grant_id": grant_id,
            "grantee_principal": grantee_principal,
            "grantee_service_principal": grantee_service_principal,
            "name": name,
        }
        return self._list_grants(_KEY_PK, params, given, after_grant_id, limit)

    def list_retirable_grants(
        self,
        region: str,
        *,
        retiring_principal: str | None = None,
        retiring_service_principal: str | None = None,
        after_grant_id: str | None = None,
        limit: int,
    ) -> list[GrantRecord]:
        given = {
            "retiring_principal": retiring_principal,
            "retiring_service_principal": retiring_service_principal,
        }
        if all(v is None for v in given.values()):
            return []
        return self._list_grants(("region",), {"p_region": region}, given, after_grant_id, limit)

    def _list_grants(
        self,
        scope: tuple[str, ...],
        params: dict[str, Any],
        given: Mapping[str, str | None],
        after: str | None,
        limit: int | None,
    ) -> list[GrantRecord]:
        names = list(scope)
        for column, value in given.items():
            if value is not None:
                names.append(column)
                params[f"p_{column}"] = value
        if after is not None:
            params["p_after"] = after
        if limit is not None:
            params["p_limit"] = limit
        stmt = self._q.grant_list(tuple(names), after is not None, limit is not None)
        return [_grant_row(row) for row in self._run(stmt, params)]

    def delete_grant(self, account: str, region: str, key_id: str, grant_id: str) -> bool:
        params = {"p_account": account, "p_region": region, "p_key_id": key_id, "p_grant_id": grant_id}
        return self._run(self._q.delete_grant, params).rowcount > 0

    def count_grants(self, account: str, region: str, key_id: str) -> int:
        params = {"p_account": account, "p_region": region, "p_key_id": key_id}
        return int(self._run(self._q.count_grants, params).scalar_one())


def _grant_row(row: Row[Any]) -> GrantRecord:
    values = list(row)
    raw = values[_GRANT_OPERATIONS_INDEX]
    values[_GRANT_OPERATIONS_INDEX] = tuple(raw.split(",")) if raw else ()
    return GrantRecord(*values)


# --------------------------------------------------------------------------------------------- store


class SqlStore:
    """``Store`` on SQLite or PostgreSQL. The schema must exist: run
    :func:`openkms.storage.migrate.upgrade_database` first (with the same ``schema``)."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        schema: str | None = None,
        pool_size: int = 8,
    ) -> None:
        self._engine = create_sql_engine(
            url, schema=schema, sqlite_synchronous=sqlite_synchronous, pool_size=pool_size
        )
        self._statements = _Statements(self._engine.dialect.name)
        self._sqlite_file = self.dialect == "sqlite" and bool(self._engine.url.database)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @contextmanager
    def tx(self) -> Iterator[SqlTx]:
        if not self._sqlite_file:
            with self._engine.begin() as conn:
                yield SqlTx(conn, self._statements, write=True)
            return
        with sqlite_write_lock(self._engine), self._engine.begin() as conn:
            yield SqlTx(conn, self._statements, write=True)

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        with self._engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY_OPTION: True})
            with conn.begin():
                yield SqlTx(conn, self._statements)

    def close(self) -> None:
        self._engine.dispose()


if TYPE_CHECKING:

    def _conforms(store: SqlStore, tx: SqlTx) -> tuple[Store, Tx]:
        return store, tx
