"""The node committer and the workers' commit streams, over real socket pairs and a real event loop (the
sink is a recording one: the SQL and file sinks have their own tests, and the server tests run the whole)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

import orjson
import pytest
from tests.unit.audit.test_writer import Sink, ok, outcome

from openkms.api.http import HttpResponse
from openkms.audit.commits import AuditUnavailable
from openkms.audit.committer import NodeCommitter
from openkms.audit.events import EventBuilder
from openkms.audit.sink import AuditSink, PendingEvent
from openkms.audit.stream import CommitStream


class Node:
    """A committer with ``workers`` commit streams, as a master and its forked workers would have."""

    def __init__(self, sink: Sink | None, workers: int = 2) -> None:
        self.sink = sink
        self.sealed = sink is None
        self.committer = NodeCommitter(self._sinks, commit_gap=0.05)
        self.broken: list[int] = []
        self.streams = [
            CommitStream(
                self.committer.open_channel(),
                EventBuilder("aws"),
                on_broken=lambda i=i: self.broken.append(i),
            )
            for i in range(workers)
        ]
        self.committer.start()

    def _sinks(self) -> Sequence[AuditSink] | None:
        return None if self.sink is None else [self.sink]

    def close(self) -> None:
        self.committer.close()


async def submit(stream: CommitStream, first: int, n: int) -> list[HttpResponse]:
    return list(await asyncio.gather(*(stream(outcome(i), ok(i)) for i in range(first, first + n))))


def test_every_response_waits_for_its_commit_and_workers_share_commits() -> None:
    sink = Sink()
    node = Node(sink)

    async def main() -> list[HttpResponse]:
        sink.gate.clear()  # the first commit blocks: everything else queues behind it
        first = asyncio.ensure_future(submit(node.streams[0], 0, 1))
        await asyncio.sleep(0.1)
        assert not first.done()  # not released before its record is durable
        rest = [asyncio.ensure_future(submit(s, 100 * (w + 1), 30)) for w, s in enumerate(node.streams)]
        await asyncio.sleep(0.1)
        sink.gate.set()
        answers = await first
        for each in rest:
            answers += await each
        return answers

    try:
        answers = asyncio.run(main())
    finally:
        node.close()
    assert sorted(a.body for a in answers) == sorted(
        ok(i).body for i in [0, *range(100, 130), *range(200, 230)]
    )
    assert [len(b) for b in sink.batches] == [1, 60]  # both workers' records in one commit
    assert node.committer.stats()["events"] == 61 and node.committer.stats()["batches"] == 2


def test_a_failed_commit_fails_its_requests_closed_and_service_resumes() -> None:
    sink = Sink()
    node = Node(sink, workers=1)

    async def main() -> tuple[list[HttpResponse], list[HttpResponse]]:
        sink.failing = True
        failed = await submit(node.streams[0], 0, 5)
        sink.failing = False
        return failed, await submit(node.streams[0], 10, 5)

    try:
        failed, later = asyncio.run(main())
    finally:
        node.close()
    assert {a.status for a in failed} == {500} and all(b"KMSInternalException" in a.body for a in failed)
    assert [a.body for a in later] == [ok(i).body for i in range(10, 15)]
    assert sum(len(b) for b in sink.batches) == 5  # nothing of the failed batch was kept


def test_a_sealed_node_fails_closed() -> None:
    node = Node(None, workers=1)
    try:
        answers = asyncio.run(submit(node.streams[0], 0, 3))
    finally:
        node.close()
    assert {a.status for a in answers} == {500}


def test_a_lost_committer_fails_everything_in_flight_and_later_and_stops_the_worker() -> None:
    sink = Sink()
    node = Node(sink, workers=1)

    async def main() -> tuple[list[HttpResponse], Exception | None]:
        sink.gate.clear()
        pending = asyncio.ensure_future(submit(node.streams[0], 0, 3))
        await asyncio.sleep(0.1)
        for channel in list(node.committer._channels):  # the master's end goes away (as when it dies)
            channel.sock.shutdown(socket.SHUT_RDWR)
        answers = await pending
        try:
            node.streams[0](outcome(9), ok(9))
        except AuditUnavailable as exc:
            return answers, exc
        return answers, None

    try:
        answers, refused = asyncio.run(main())
    finally:
        sink.gate.set()
        node.close()
    assert {a.status for a in answers} == {500}
    assert refused is not None
    assert node.broken == [0]


@pytest.mark.parametrize("workers", [1, 3])
def test_close_commits_what_arrived(workers: int) -> None:
    sink = Sink()
    node = Node(sink, workers=workers)
    try:
        answers = asyncio.run(submit(node.streams[-1], 0, 10))
    finally:
        node.close()
    assert [a.body for a in answers] == [ok(i).body for i in range(10)]
    assert not node.committer._thread.is_alive()


# --- the master's own records (the background jobs' service events) ----------------------------------------
def service_event(key_id: str) -> PendingEvent:
    return EventBuilder("aws").service_event(
        "DeleteKey", account="111122223333", region="us-east-1", key_id=key_id, when=1.0
    )


def test_the_masters_records_join_the_workers_commits_and_return_when_durable() -> None:
    sink = Sink()
    node = Node(sink, workers=1)

    async def main() -> list[HttpResponse]:
        sink.gate.clear()  # one commit in progress: the worker's next batch and the master's record queue
        first = asyncio.ensure_future(submit(node.streams[0], 0, 1))
        await asyncio.sleep(0.1)
        rest = asyncio.ensure_future(submit(node.streams[0], 10, 4))
        recorded = asyncio.get_running_loop().run_in_executor(
            None, node.committer.record, [service_event("k1")]
        )
        await asyncio.sleep(0.1)
        assert not recorded.done()  # not before its commit is durable
        sink.gate.set()
        await recorded
        return await first + await rest

    try:
        answers = asyncio.run(main())
    finally:
        node.close()
    assert [a.status for a in answers] == [200] * 5
    assert [len(b) for b in sink.batches] == [1, 5]  # the record shared the second commit with the worker's
    names = [orjson.loads(e.body)["eventName"] for e in sink.batches[1]]
    assert names.count("DeleteKey") == 1


@pytest.mark.parametrize("trouble", ["failing", "sealed"])
def test_a_master_record_that_cannot_be_written_raises(trouble: str) -> None:
    sink = Sink()
    sink.failing = trouble == "failing"
    node = Node(None if trouble == "sealed" else sink, workers=0)
    try:
        with pytest.raises(AuditUnavailable, match="could not be written"):
            node.committer.record([service_event("k2")])
        if trouble == "failing":
            sink.failing = False
            node.committer.record([service_event("k3")])  # service resumes with the store
    finally:
        node.close()
    if trouble == "failing":
        assert [
            orjson.loads(e.body)["resources"][0]["ARN"].rsplit("/", 1)[1] for b in sink.batches for e in b
        ] == ["k3"]


def test_a_master_record_after_close_raises_at_once() -> None:
    node = Node(Sink(), workers=0)
    node.close()
    started = time.monotonic()
    with pytest.raises(AuditUnavailable, match="not running"):
        node.committer.record([service_event("k4")], timeout=5)
    assert time.monotonic() - started < 1
