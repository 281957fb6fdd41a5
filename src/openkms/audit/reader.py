"""Reading the database sink: queries (CLI, LookupEvents), the chain for verification, key usage.

Events live in blocks (one row per group commit, see ``storage/tables.py``); a query selects candidate
blocks by time (``max_time`` index), by key (``audit_block_keys``) or by sequence number, decodes their
JSON lines and filters the events.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, Select, func, select

from openkms.audit.chain import canonical
from openkms.audit.events import user_name as shown_user_name
from openkms.audit.fields import TRACKED_OPERATIONS
from openkms.service.key_usage import KeyUsageRecord
from openkms.storage.tables import audit_block_keys, audit_blocks, audit_chain, audit_digests

_BLOCK_PAGE = 64


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One record of the chain, with the fields queries use."""

    seq: int
    prev_hash: str
    hash: str
    record: dict[str, Any]  # the CloudTrail record

    @property
    def event(self) -> str:
        """Canonical JSON of the record (what the hash covers)."""
        return canonical(self.record).decode("utf-8")

    @property
    def event_time(self) -> float:
        text = self.record.get("eventTime")
        return (
            float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
            if isinstance(text, str)
            else 0.0
        )

    @property
    def event_id(self) -> str:
        return str(self.record.get("eventID", ""))

    @property
    def event_name(self) -> str:
        return str(self.record.get("eventName", ""))

    @property
    def event_source(self) -> str:
        return str(self.record.get("eventSource", ""))

    @property
    def request_id(self) -> str | None:
        return self.record.get("requestID")

    @property
    def error_code(self) -> str | None:
        return self.record.get("errorCode")

    @property
    def read_only(self) -> bool:
        return bool(self.record.get("readOnly"))

    @property
    def identity(self) -> dict[str, Any]:
        found = self.record.get("userIdentity")
        return found if isinstance(found, dict) else {}

    @property
    def resources(self) -> list[str]:
        return [str(r.get("ARN")) for r in self.record.get("resources") or () if isinstance(r, dict)]


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str
    started_at: float
    first_seq: int
    first_prev_hash: str
    digest_number: int
    digest_seq: int
    digest_at: float
    digest_hash: str


@dataclass(frozen=True, slots=True)
class StoredBlock:
    first_seq: int
    last_seq: int
    count: int
    min_time: float
    max_time: float
    events: str  # JSON lines


@dataclass(frozen=True, slots=True)
class StoredDigest:
    number: int
    created_at: float
    last_seq: int
    body: str
    signature: str


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every given field must match (``key_arn``: the event touched that key; ``any_key``: some key)."""

    start: float | None = None  # event time >= start
    end: float | None = None  # event time < end
    account: str | None = None
    key_arn: str | None = None
    key_id: str | None = None  # a bare key id: any Region/account
    any_key: bool = False
    event_name: str | None = None
    event_source: str | None = None
    event_id: str | None = None
    request_id: str | None = None
    principal: str | None = None  # an ARN
    user_name: str | None = None  # "root" or an IAM user name
    access_key_id: str | None = None
    error_code: str | None = None
    read_only: bool | None = None

    def matches(self, e: StoredEvent) -> bool:
        r = e.record
        identity = e.identity
        checks = (
            (self.account, r.get("recipientAccountId")),
            (self.event_name, r.get("eventName")),
            (self.event_source, r.get("eventSource")),
            (self.event_id, r.get("eventID")),
            (self.request_id, r.get("requestID")),
            (self.principal, identity.get("arn")),
            (self.access_key_id, identity.get("accessKeyId")),
            (self.error_code, r.get("errorCode")),
            (self.read_only, r.get("readOnly")),
        )
        if any(wanted is not None and wanted != value for wanted, value in checks):
            return False
        if self.start is not None or self.end is not None:
            t = e.event_time
            if (self.start is not None and t < int(self.start)) or (self.end is not None and t >= self.end):
                return False
        if self.user_name is not None and shown_user_name(identity) != self.user_name:
            return False  # the name LookupEvents shows: an IAM user's ARN may carry a path
        if self.key_arn is not None or self.key_id is not None or self.any_key:
            arns = e.resources
            if self.key_arn is not None and self.key_arn not in arns:
                return False
            if self.key_id is not None and not any(a.endswith(f":key/{self.key_id}") for a in arns):
                return False
            if not arns:
                return False
        return True


def parse_block(events: str) -> Iterator[StoredEvent]:
    for line in events.split("\n"):
        record = orjson.loads(line)
        yield StoredEvent(int(record["seq"]), str(record["prev"]), str(record["hash"]), record["event"])


class AuditReader:
    """Read-only access to the audit tables (also the ``KeyUsageSource`` of GetKeyLastUsage)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _blocks(self, stmt: Select[Any]) -> list[StoredBlock]:
        with self._engine.connect() as conn:
            return [StoredBlock(*tuple(row)) for row in conn.execute(stmt)]

    def blocks(
        self,
        f: EventFilter | None = None,
        *,
        newest_first: bool = False,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> Iterator[StoredBlock]:
        """Blocks that may hold matching events, in chain order (or reversed), read a page at a time."""
        b = audit_blocks.c
        base = select(*audit_blocks.c)
        if f is not None and f.start is not None:
            base = base.where(b.max_time >= int(f.start))
        if f is not None and f.end is not None:
            base = base.where(b.min_time < f.end + 1)
        if f is not None and f.key_arn is not None:
            keyed = select(audit_block_keys.c.block).where(audit_block_keys.c.key_arn == f.key_arn)
            base = base.where(b.first_seq.in_(keyed))
        if after_seq is not None:
            base = base.where(b.last_seq > after_seq)
        while True:
            stmt = base
            if before_seq is not None:
                stmt = stmt.where(b.first_seq < before_seq)
            order = b.first_seq.desc() if newest_first else b.first_seq
            page = self._blocks(stmt.order_by(order).limit(_BLOCK_PAGE))
            yield from page
            if len(page) < _BLOCK_PAGE:
                return
            if newest_first:
                before_seq = page[-1].first_seq
            else:
                base = base.where(b.first_seq > page[-1].first_seq)

    def query(
        self,
        f: EventFilter,
        *,
        limit: int,
        before_seq: int | None = None,
        after_seq: int | None = None,
        newest_first: bool = True,
    ) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        for block in self.blocks(f, newest_first=newest_first, after_seq=after_seq, before_seq=before_seq):
            events = list(parse_block(block.events))
            for e in reversed(events) if newest_first else events:
                if before_seq is not None and e.seq >= before_seq:
                    continue
                if after_seq is not None and e.seq <= after_seq:
                    continue
                if f.matches(e):
                    found.append(e)
                    if len(found) >= limit:
                        return found
        return found

    def head(self) -> ChainHead | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(audit_chain).where(audit_chain.c.id == 1)).first()
        return None if row is None else ChainHead(*row[1:])

    def iter_events(self, first_seq: int, last_seq: int) -> Iterator[StoredEvent]:
        """Events with first_seq <= seq <= last_seq, ascending."""
        for block in self.blocks(after_seq=first_seq - 1):
            if block.first_seq > last_seq:
                return
            for e in parse_block(block.events):
                if first_seq <= e.seq <= last_seq:
                    yield e

    def seq_range(self, start: float | None, end: float | None) -> tuple[int, int] | None:
        """First and last seq of the events in [start, end) (None: no such event)."""
        f = EventFilter(start=start, end=end)
        first = self.query(f, limit=1, newest_first=False)
        last = self.query(f, limit=1, newest_first=True)
        return (first[0].seq, last[0].seq) if first and last else None

    def hash_before(self, seq: int) -> str | None:
        """The stored hash of event ``seq - 1`` (the chain value an export starting at ``seq`` needs)."""
        for e in self.iter_events(seq - 1, seq - 1):
            return e.hash
        return None

    def max_seq(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(audit_blocks.c.last_seq), 0))).scalar_one())

    def digests(self) -> list[StoredDigest]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(audit_digests).order_by(audit_digests.c.number)).all()
        return [StoredDigest(*tuple(row)) for row in rows]

    # --- KeyUsageSource -----------------------------------------------------------------------------
    def last_usage(self, key_arn: str) -> KeyUsageRecord | None:
        """The newest successful tracked operation with the key."""
        f = EventFilter(key_arn=key_arn)
        for block in self.blocks(f, newest_first=True):
            for e in reversed(list(parse_block(block.events))):
                if e.error_code is None and e.event_name in TRACKED_OPERATIONS and key_arn in e.resources:
                    return KeyUsageRecord(e.event_name, e.event_time, e.event_id, e.request_id or "")
        return None

    def tracking_start(self) -> float | None:
        head = self.head()
        return None if head is None else head.started_at
