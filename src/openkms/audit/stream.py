"""A worker's audit hook when its node runs a committer (``committer.py``): build, send, wait for the ack.

Everything happens on the worker's event loop thread; there is no writer thread to hand the GIL to::

    KmsApi._finish -> CommitStream(outcome, response)   build the record (the outcome, with any secret
                                                        it holds, is dropped here), stage it
                   -> _flush (once per loop pass)       one batch frame for the staged records -> socket
    socket readable -> ack                              release the batch's responses, or answer
                                                        KMSInternalException for each (fail closed)

SECURITY INVARIANT (fail closed): a response is released only by an ack saying its batch is durable. If
the channel breaks (the master died, a malformed frame), every request in flight and every later one of
this worker answers KMSInternalException, and the worker stops (SIGTERM to itself): a live master forks a
replacement with a new channel; an orphan must not go on answering.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from openkms.api.http import HttpResponse
from openkms.api.protocol import Outcome
from openkms.audit.commits import AuditUnavailable, first_line
from openkms.audit.events import EventBuilder
from openkms.audit.wire import ACK, FrameReader, WireError, encode_batch
from openkms.audit.writer import WaitingRecord, release

log = logging.getLogger("openkms.audit")

_READ_SIZE = 1 << 16


def stop_this_worker() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # graceful: the requests in flight get their answers


class CommitStream:
    """The ``AuditHook`` of a worker whose records are committed by the node's committer."""

    def __init__(
        self,
        channel: socket.socket,
        builder: EventBuilder,
        *,
        max_pending: int = 100_000,
        on_broken: Callable[[], None] = stop_this_worker,
    ) -> None:
        channel.setblocking(False)
        self._on_broken = on_broken
        self._sock = channel
        self._fd = channel.fileno()
        self._builder = builder
        self._max_pending = max_pending
        self._loop: asyncio.AbstractEventLoop | None = None
        self._staged: list[WaitingRecord] = []
        self._flush_scheduled = False
        self._waiting: dict[int, list[WaitingRecord]] = {}
        self._in_flight = 0
        self._next_batch = 0
        self._out = bytearray()
        self._reader = FrameReader()
        self._broken: str | None = None
        self._stats: dict[str, Any] = {}

    def __call__(self, outcome: Outcome, response: HttpResponse) -> asyncio.Future[HttpResponse]:
        if self._broken is not None or self._in_flight >= self._max_pending:
            raise AuditUnavailable(self._broken or "the audit queue is full")
        event = self._builder.api_event(outcome)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._attach(loop)
        future: asyncio.Future[HttpResponse] = loop.create_future()
        self._staged.append((event, future, response, outcome.request_id))
        self._in_flight += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:  # a new loop (tests): nothing staged on the old one can complete
            self._break("the event loop changed")
            raise AuditUnavailable("the event loop changed")
        self._loop = loop
        loop.add_reader(self._fd, self._readable)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._waiting:
            # One batch in flight per worker: what is staged meanwhile goes out with the ack (``_readable``).
            # The committer could not commit it before the current commit ends anyway, and one send per
            # commit instead of one per loop pass saves the worker most of the channel's cost.
            return
        if self._staged:
            self._send_batch()

    def _send_batch(self) -> None:
        items, self._staged = self._staged, []
        if self._broken is not None:
            self._release(items, ok=False)
            return
        self._next_batch += 1
        if items:
            self._waiting[self._next_batch] = items
        self._write(encode_batch(self._next_batch, [item[0] for item in items]))

    def _write(self, data: bytes) -> None:
        if self._out:  # the socket is full: keep order, the writer callback sends the rest
            self._out += data
            return
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._break(f"cannot send to the audit committer: {first_line(exc)}")
            return
        if sent < len(data):
            self._out += data[sent:]
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._break(f"cannot send to the audit committer: {first_line(exc)}")
            return
        del self._out[:sent]
        if not self._out and self._loop is not None:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._break(f"the audit committer channel failed: {first_line(exc)}")
            return
        if not data:
            self._break("the audit committer closed the channel")
            return
        self._reader.feed(data)
        acked = False
        try:
            for kind, value in self._reader.replies():
                if kind == ACK:
                    acked = True
                    batch_id, ok = value
                    items = self._waiting.pop(batch_id, None)
                    if items is not None:
                        self._release(items, ok=ok)
                else:
                    self._stats = value
        except WireError as exc:
            self._break(f"the audit committer sent a malformed frame: {exc}")
            return
        if acked and not self._waiting:
            # answer the ack at once with the next batch, empty if nothing is staged: the committer waits
            # for every worker it acked before it commits again (committer.py)
            self._send_batch()

    def _release(self, items: list[WaitingRecord], *, ok: bool) -> None:
        self._in_flight -= len(items)
        release(items, ok)

    def _break(self, reason: str) -> None:
        """Fail closed for good: every request in flight and every later one fails."""
        if self._broken is not None:
            return
        self._broken = reason
        log.error("audit log unavailable in this worker: %s", reason)
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        waiting, self._waiting = self._waiting, {}
        for items in waiting.values():
            self._release(items, ok=False)
        staged, self._staged = self._staged, []
        self._release(staged, ok=False)
        self._sock.close()
        self._on_broken()

    def stats(self) -> dict[str, Any]:
        """The node committer's statistics as last pushed, plus this worker's records in flight."""
        return {**self._stats, "queued": self._in_flight, "healthy": self._broken is None}
