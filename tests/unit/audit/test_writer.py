"""Group commit and fail-closed behaviour of the audit writer (fake sinks, real event loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import orjson
import pytest

from openkms.api.http import HttpResponse
from openkms.api.protocol import Outcome
from openkms.audit.commits import AuditUnavailable
from openkms.audit.events import EventBuilder
from openkms.audit.sink import PendingEvent
from openkms.audit.writer import AuditWriter, ServiceEvent


class Sink:
    name = "fake"

    def __init__(self) -> None:
        self.batches: list[list[PendingEvent]] = []
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def append(self, events: Sequence[PendingEvent], now: float) -> None:
        self.gate.wait(5)
        if self.failing:
            raise OSError("disk unavailable")
        self.batches.append(list(events))

    def digest_if_due(self, now: float) -> bool:
        return False

    def close(self) -> None:
        pass


def outcome(i: int) -> Outcome:
    return Outcome(f"req-{i}", "GenerateRandom", None, None, 0.0, 1.0, "127.0.0.1", "test", "kms")


def ok(i: int) -> HttpResponse:
    return HttpResponse(200, [], b"ok-%d" % i)


async def submit_all(writer: AuditWriter, n: int) -> list[HttpResponse]:
    futures = [writer(outcome(i), ok(i)) for i in range(n)]
    return list(await asyncio.gather(*futures))


def test_responses_released_after_commit_in_shared_batches() -> None:
    sink = Sink()
    writer = AuditWriter([sink], EventBuilder("aws"), max_batch=64)
    try:
        answers = asyncio.run(submit_all(writer, 200))
    finally:
        writer.close()
    assert [a.body for a in answers] == [b"ok-%d" % i for i in range(200)]
    events = [orjson.loads(e.body) for batch in sink.batches for e in batch]
    assert [e["requestID"] for e in events] == [f"req-{i}" for i in range(200)]
    assert len(sink.batches) < 200 and max(len(b) for b in sink.batches) <= 64  # grouped, bounded
    stats = writer.stats()
    assert stats["events"] == 200 and stats["batches"] == len(sink.batches)


def test_fail_closed_then_recover() -> None:
    sink = Sink()
    writer = AuditWriter([sink], EventBuilder("aws"))
    try:
        sink.failing = True
        failed = asyncio.run(submit_all(writer, 20))
        assert all(a.status == 500 for a in failed)
        assert all(orjson.loads(a.body)["__type"] == "KMSInternalException" for a in failed)
        assert not sink.batches
        assert writer.stats()["healthy"] is False
        sink.failing = False
        recovered = asyncio.run(submit_all(writer, 20))
        assert all(a.status == 200 for a in recovered)
        assert writer.stats()["healthy"] is True
    finally:
        writer.close()


def test_every_sink_must_succeed() -> None:
    good, bad = Sink(), Sink()
    bad.failing = True
    writer = AuditWriter([good, bad], EventBuilder("aws"))
    try:
        answers = asyncio.run(submit_all(writer, 5))
    finally:
        writer.close()
    assert all(a.status == 500 for a in answers)


def test_queue_bound_fails_closed() -> None:
    sink = Sink()
    sink.gate.clear()  # the store hangs
    writer = AuditWriter([sink], EventBuilder("aws"), max_batch=2, max_pending=4)

    async def flood() -> int:
        refused = 0
        futures = []
        for i in range(20):
            try:
                futures.append(writer(outcome(i), ok(i)))
            except AuditUnavailable:
                refused += 1
            await asyncio.sleep(0)
        sink.gate.set()
        await asyncio.gather(*futures)
        return refused

    try:
        assert asyncio.run(flood()) > 0
    finally:
        writer.close()


def test_service_events_block_until_durable() -> None:
    sink = Sink()
    writer = AuditWriter([sink], EventBuilder("aws"))
    try:
        writer.record(ServiceEvent("RotateKey", "111122223333", "us-east-1", "k1", 5.0))
        record = orjson.loads(sink.batches[0][0].body)
        assert record["eventName"] == "RotateKey" and record["eventType"] == "AwsServiceEvent"
        sink.failing = True
        with pytest.raises(AuditUnavailable):
            writer.record(ServiceEvent("DeleteKey", "111122223333", "us-east-1", "k1", 6.0))
    finally:
        writer.close()
    with pytest.raises(AuditUnavailable):
        writer.record(ServiceEvent("DeleteKey", "111122223333", "us-east-1", "k1", 6.0))
