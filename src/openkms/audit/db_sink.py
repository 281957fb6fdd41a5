"""The database sink (default): one chain for the whole cluster, one ``audit_blocks`` row per batch.

Ordering across processes and nodes: every append runs in one transaction that moves the chain head row
(``audit_chain``) from the head it numbered the batch after to the new one; that UPDATE holds the row
lock on PostgreSQL, and SQLite's ``BEGIN IMMEDIATE`` already holds the database write lock. If another
process moved the head first, the batch is renumbered after the current head inside the same locked
transaction. So sequence numbers are dense, commit order is chain order, and a failed transaction leaves
no trace. The commit (fsynced: SQLite ``synchronous=FULL`` by default, PostgreSQL's WAL flush) is the
durability point the writer waits for before any response is released.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from openkms.audit.chain import GENESIS_HEX, DigestState, digest_due, event_line, link
from openkms.audit.sink import PendingEvent, sign_digest
from openkms.crypto.digest_signing import DigestSigner
from openkms.storage.sql import sqlite_write_lock
from openkms.storage.tables import audit_block_keys, audit_blocks, audit_chain, audit_digests

CHAIN_NAME = "database"


# Fixed statements (no value is ever formatted into them); "?" becomes "%s" for psycopg.
_SQL_HEAD = (
    "SELECT seq, hash, digest_number, digest_seq, digest_at, digest_hash FROM audit_chain WHERE id = 1"
)
_SQL_BLOCK = (
    "INSERT INTO audit_blocks (first_seq, last_seq, count, min_time, max_time, events) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQL_KEYS = "INSERT INTO audit_block_keys (key_arn, block) VALUES (?, ?)"
_SQL_MOVE_HEAD = "UPDATE audit_chain SET seq = ?, hash = ? WHERE id = 1"
_SQL_CAS_HEAD = (
    "UPDATE audit_chain SET seq = ?, hash = ? WHERE id = 1 AND seq = ? AND hash = ? AND digest_number = ?"
)
_SQL_DIGEST = (
    "INSERT INTO audit_digests (number, created_at, last_seq, body, signature) VALUES (?, ?, ?, ?, ?)"
)
_SQL_DIGEST_HEAD = (
    "UPDATE audit_chain SET digest_number = ?, digest_seq = ?, digest_at = ?, digest_hash = ? WHERE id = 1"
)


class DatabaseSink:
    """Appends go straight to the DB-API cursor (a handful of statements per batch, rows as tuples):
    SQLAlchemy's per-statement work would cost more than the rows themselves on the request path."""

    name = CHAIN_NAME

    def __init__(self, engine: Engine, signer: DigestSigner | None, digest_interval: float) -> None:
        self._engine = engine
        self._signer = signer
        self._interval = digest_interval
        self._lock = threading.Lock()
        dialect = engine.dialect.name
        self._sqlite = dialect == "sqlite"
        insert: Any = pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert
        self._insert_head = insert(audit_chain).on_conflict_do_nothing()
        self._update_head = update(audit_chain).where(audit_chain.c.id == 1)

        def sql(text: str) -> str:
            return text if self._sqlite else text.replace("?", "%s")

        # SQLite: BEGIN IMMEDIATE already holds the write lock; PostgreSQL: lock the head row
        self._sql_head = _SQL_HEAD if self._sqlite else _SQL_HEAD + " FOR UPDATE"
        self._sql_block = sql(_SQL_BLOCK)
        self._sql_keys = sql(_SQL_KEYS)
        self._sql_move_head = sql(_SQL_MOVE_HEAD)
        self._sql_cas_head = sql(_SQL_CAS_HEAD)
        self._raw: Any = None  # this sink's DB-API connection (from the engine's pool)
        self._head_cache: tuple[Any, ...] | None = None  # the head as this process last wrote it
        self._sql_digest = sql(_SQL_DIGEST)
        self._sql_digest_head = sql(_SQL_DIGEST_HEAD)

    # --- writing ------------------------------------------------------------------------------------
    def ensure_chain(self, now: float) -> None:
        """Create the chain head row if this database has none yet (idempotent, race-safe)."""
        with self._engine.begin() as conn:
            conn.execute(
                self._insert_head,
                {
                    "id": 1, "seq": 0, "hash": GENESIS_HEX, "started_at": now, "first_seq": 1,
                    "first_prev_hash": GENESIS_HEX, "digest_number": 0, "digest_seq": 0, "digest_at": now,
                    "digest_hash": GENESIS_HEX,
                },
            )  # fmt: skip

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A DB-API cursor inside one transaction on this sink's own connection (kept open between
        batches); committed on exit, rolled back on error, and the connection replaced after an error."""
        # Queue with the key store's writers on SQLite instead of meeting them in busy-handler sleeps.
        with sqlite_write_lock(self._engine), self._cursor_transaction() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _cursor_transaction(self) -> Iterator[Any]:
        if self._raw is None:
            self._raw = self._engine.raw_connection()
        raw = self._raw
        cursor = raw.cursor()
        try:
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE")  # the write lock, before anything is read
            yield cursor
            raw.commit()  # the durability point (fsync)
        except BaseException:
            self._raw = None
            self._head_cache = None
            with contextlib.suppress(Exception):
                raw.rollback()
            with contextlib.suppress(Exception):
                raw.invalidate()  # a fresh connection next time (the store may have been repaired)
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _head(self, cursor: Any) -> tuple[Any, ...]:
        cursor.execute(self._sql_head)
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError("the audit chain head is missing (the database was not initialised)")
        return tuple(row)

    def append(self, events: Sequence[PendingEvent], now: float) -> None:
        if not events:
            return
        with self._lock, self._transaction() as cursor:
            head = self._head_cache
            if head is not None:
                # Optimistic: number the batch after the head this process last wrote, then move the head
                # only if it is still there (the UPDATE also takes the lock). If another process appended
                # meanwhile, read the head and renumber, still inside the locked transaction.
                block, seq, last = _block(events, head[0], bytes.fromhex(head[1]))
                cursor.execute(self._sql_cas_head, (seq, last.hex(), head[0], head[1], head[2]))
                if cursor.rowcount != 1:
                    head = None
            if head is None:
                head = self._head(cursor)  # INVARIANT: locked until commit (see the module docstring)
                block, seq, last = _block(events, head[0], bytes.fromhex(head[1]))
                cursor.execute(self._sql_move_head, (seq, last.hex()))
            first = head[0] + 1
            cursor.execute(self._sql_block, (first, seq, len(events), *block))
            keys = {arn for e in events for arn in e.resources}
            if keys:
                cursor.executemany(self._sql_keys, [(arn, first) for arn in keys])
            digest = self._digest(cursor, head, seq, last, now)
            self._head_cache = (seq, last.hex(), *(digest or head[2:6]))

    def digest_if_due(self, now: float) -> bool:
        if self._signer is None:
            return False
        with self._lock, self._transaction() as cursor:
            head = self._head(cursor)
            digest = self._digest(cursor, head, head[0], bytes.fromhex(head[1]), now)
            self._head_cache = (*head[:2], *digest) if digest else head
            return digest is not None

    def _digest(
        self, cursor: Any, head: tuple[Any, ...], seq: int, last: bytes, now: float
    ) -> tuple[int, int, float, str] | None:
        """Write a signed digest if one is due (inside the caller's transaction); return the new digest
        columns of the head, or None."""
        state = DigestState(*head[2:6])
        if self._signer is None or not digest_due(state, seq, now, self._interval):
            return None
        signed = sign_digest(
            self._signer, chain=CHAIN_NAME, previous=state, last_seq=seq, last_hash=last, now=now
        )
        cursor.execute(
            self._sql_digest, (signed.number, now, seq, signed.body.decode("utf-8"), signed.signature_b64)
        )
        cursor.execute(self._sql_digest_head, (signed.number, seq, now, signed.record_hash))
        return signed.number, seq, now, signed.record_hash

    # --- retention ----------------------------------------------------------------------------------
    def prune(self, before: float) -> int:
        """Delete whole blocks whose events are all older than ``before`` (a prefix of the chain). The head
        remembers where the kept chain starts and the hash before it, so the rest still verifies.
        Returns the number of events deleted."""
        b = audit_blocks.c
        with self._lock, self._engine.begin() as conn:
            head_query = select(audit_chain).where(audit_chain.c.id == 1)
            if not self._sqlite:
                head_query = head_query.with_for_update()
            conn.execute(head_query).one()
            # the newest block of the prefix of blocks that are entirely older than ``before``
            newer = select(func.min(b.first_seq)).where(b.max_time >= before).scalar_subquery()
            row = conn.execute(
                select(b.first_seq, b.last_seq, b.events)
                .where(b.max_time < before, b.first_seq < func.coalesce(newer, b.last_seq + 1))
                .order_by(b.first_seq.desc())
                .limit(1)
            ).first()
            if row is None:
                return 0
            cut, anchor = int(row[1]), _last_hash(row[2])
            deleted = conn.execute(
                select(func.coalesce(func.sum(b.count), 0)).where(b.last_seq <= cut)
            ).scalar()
            conn.execute(delete(audit_blocks).where(b.last_seq <= cut))
            conn.execute(delete(audit_block_keys).where(audit_block_keys.c.block <= cut))
            conn.execute(delete(audit_digests).where(audit_digests.c.last_seq < cut))
            conn.execute(
                update(audit_chain)
                .where(audit_chain.c.id == 1)
                .values(first_seq=cut + 1, first_prev_hash=anchor)
            )
            self._head_cache = None
            return int(deleted or 0)

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()
            self._raw = None
        self._engine.dispose()


def _block(events: Sequence[PendingEvent], seq: int, prev: bytes) -> tuple[tuple[Any, ...], int, bytes]:
    """Number and hash ``events`` after (seq, prev).

    Returns ((min time, max time, JSON lines), last seq, last hash)."""
    lines: list[bytes] = []
    low = high = events[0].time
    for e in events:
        seq += 1
        digest = link(prev, seq, e.body)
        lines.append(event_line(seq, prev, digest, e.body))
        prev = digest
        t = e.time
        if t < low:
            low = t
        elif t > high:
            high = t
    return (low, high, b"\n".join(lines).decode("utf-8")), seq, prev


def _last_hash(lines: str) -> str:
    """The hash of the last record in a block's JSON lines."""
    return str(orjson.loads(lines.rsplit("\n", 1)[-1])["hash"])
