"""The database sink on SQLite and PostgreSQL: one chain across concurrent appenders, retention, queries."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import orjson

from openkms.audit.chain import canonical
from openkms.audit.db_sink import DatabaseSink
from openkms.audit.reader import AuditReader, EventFilter
from openkms.audit.sink import PendingEvent
from openkms.audit.verify_io import verify_database
from openkms.crypto.digest_signing import DigestSigner, generate_seed
from openkms.storage.sql import create_sql_engine

if TYPE_CHECKING:
    from tests.integration.storage_fixtures import StoreTarget

pytest_plugins = ["tests.integration.storage_fixtures"]

SIGNER = DigestSigner(generate_seed())
KEYS = {SIGNER.key_id: SIGNER.public_raw}
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def event(writer: int, n: int, when: float, key: bool = True) -> PendingEvent:
    record = {
        "eventName": "Encrypt" if key else "ListKeys",
        "eventID": f"{writer}-{n}",
        "requestID": f"r{writer}-{n}",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        "recipientAccountId": "111122223333",
        "resources": [{"ARN": KEY, "type": "AWS::KMS::Key", "accountId": "111122223333"}] if key else [],
    }
    return PendingEvent(canonical(record), when, (KEY,) if key else ())


def sink(target: StoreTarget, interval: float = 0.001) -> DatabaseSink:
    engine = create_sql_engine(target.url, schema=target.schema, pool_size=2)
    db = DatabaseSink(engine, SIGNER, interval)
    db.ensure_chain(time.time())
    return db


def test_concurrent_appenders_make_one_verifiable_chain(store_target: StoreTarget) -> None:
    sinks = [sink(store_target) for _ in range(3)]  # three processes (or nodes)

    def work(i: int) -> None:
        for n in range(15):
            sinks[i].append([event(i, n * 4 + k, time.time(), key=k % 2 == 0) for k in range(4)], time.time())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine = create_sql_engine(store_target.url, schema=store_target.schema, pool_size=1)
    report = verify_database(engine, KEYS)
    assert report.ok, report.problems
    assert report.events == 180 and report.first_seq == 1 and report.last_seq == 180
    assert report.digests >= 1
    reader = AuditReader(engine)
    keyed = reader.query(EventFilter(key_arn=KEY), limit=1000)
    assert len(keyed) == 90 and [e.seq for e in keyed] == sorted((e.seq for e in keyed), reverse=True)
    assert reader.query(EventFilter(request_id="r1-7"), limit=5)[0].event_id == "1-7"
    usage = reader.last_usage(KEY)
    assert usage is not None and usage.operation == "Encrypt"
    for s in sinks:
        s.close()
    engine.dispose()


def test_retention_prunes_a_prefix_and_the_rest_verifies(store_target: StoreTarget) -> None:
    db = sink(store_target, interval=1000.0)
    for n in range(10):
        db.append([event(0, n * 2, 1000.0 + n), event(0, n * 2 + 1, 1000.0 + n)], 2000.0)
    deleted = db.prune(1005.0)
    assert deleted == 10
    engine = create_sql_engine(store_target.url, schema=store_target.schema, pool_size=1)
    report = verify_database(engine, KEYS)
    assert report.ok, report.problems
    assert report.first_seq == 11 and report.events == 10
    assert any("retention" in note for note in report.notes)
    db.append([event(0, 99, 3000.0)], 3000.0)  # the chain continues after pruning
    assert verify_database(engine, KEYS).ok
    db.close()
    engine.dispose()


def test_lines_are_the_file_format(store_target: StoreTarget) -> None:
    db = sink(store_target, interval=1000.0)
    db.append([event(0, 0, 5.0)], 5.0)
    engine = create_sql_engine(store_target.url, schema=store_target.schema, pool_size=1)
    block = next(AuditReader(engine).blocks())
    record = orjson.loads(block.events)
    assert set(record) == {"seq", "prev", "hash", "event"} and record["seq"] == 1
    db.close()
    engine.dispose()
