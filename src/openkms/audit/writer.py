"""Group commit: one background thread per process turns outcomes into records and commits them in batches.

Flow for a request handled on the event loop::

    KmsApi._finish -> AuditWriter(outcome, response)  loop thread: build the record (the outcome, with any
                                                      secret it holds, is dropped here), stage it; no I/O
                   -> _flush (once per loop pass)     loop thread: hand the staged list to the writer
    writer thread  -> append the batch to every sink (one transaction + fsync per sink per batch)
                   -> loop.call_soon_threadsafe(_complete, batch)   one wake-up per batch
    loop thread    -> each future resolves to its response -> responses released

While one batch commits, the next accumulates, so concurrent requests share one fsync. The event loop
never blocks on the store. SECURITY INVARIANT (fail closed): a future completes successfully only after
every sink returned from ``append`` for its batch; any failure fails the whole batch's futures and the
front door answers KMSInternalException. The next batch tries again, so service resumes on its own when
the store recovers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openkms.api.http import HttpResponse
from openkms.api.protocol import Outcome, internal_error_response
from openkms.audit.commits import AuditUnavailable, CommitLedger
from openkms.audit.events import EventBuilder
from openkms.audit.sink import AuditSink, PendingEvent

log = logging.getLogger("openkms.audit")


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """A background action to record (built on the writer thread like every other record)."""

    name: str  # "RotateKey", "DeleteKey"
    account: str
    region: str
    key_id: str
    when: float


# (record, waiter, response to release, request id); service events: (record, waiter, None, "")
WaitingRecord = tuple[
    PendingEvent, "asyncio.Future[HttpResponse] | concurrent.futures.Future[None]", HttpResponse | None, str
]


class AuditWriter:
    """The ``AuditHook`` of the front door (call it on the event loop thread), plus ``record`` for
    service events (any thread, blocking)."""

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        builder: EventBuilder,
        *,
        max_batch: int = 2048,
        max_pending: int = 100_000,
        digest_interval: float = 60.0,
        commit_gap: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not sinks:
            raise ValueError("at least one audit sink is required")
        self._sinks = tuple(sinks)
        self._builder = builder
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._digest_interval = digest_interval
        self._ledger = CommitLedger(digest_interval, clock)
        self._commit_gap = commit_gap
        self._waiting = False
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[WaitingRecord] = []
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._staged: list[WaitingRecord] = []
        self._service_builder = EventBuilder(builder.partition, builder.default_region)
        self._service_lock = threading.Lock()
        self._flush_scheduled = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="openkms-audit", daemon=True)
        self._thread.start()

    # --- producers ----------------------------------------------------------------------------------
    def __call__(self, outcome: Outcome, response: HttpResponse) -> asyncio.Future[HttpResponse]:
        """Stage one request's record; the future resolves to ``response`` once the record is durable."""
        if self._closed or len(self._staged) + self._queued >= self._max_pending:
            raise AuditUnavailable("the audit queue is full or closed")
        event = self._builder.api_event(outcome)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # the first call (or a new loop, in tests): staging starts afresh
            self._loop, self._flush_scheduled = loop, False
        future: asyncio.Future[HttpResponse] = loop.create_future()
        self._staged.append((event, future, response, outcome.request_id))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        items, self._staged = self._staged, []
        with self._cond:
            self._queue.extend(items)
            self._queued += len(items)
            # wake the writer only when it waits for work or a batch is full (not during a commit gap)
            if self._waiting or self._queued >= self._max_batch:
                self._cond.notify()

    def record(self, event: ServiceEvent, timeout: float = 60.0) -> None:
        """Record a service event durably; raise ``AuditUnavailable`` if it cannot be written."""
        if self._closed:
            raise AuditUnavailable("the audit writer is closed")
        with self._service_lock:
            record = self._service_builder.service_event(
                event.name, account=event.account, region=event.region, key_id=event.key_id, when=event.when
            )
        waiter: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            self._queue.append((record, waiter, None, ""))
            self._queued += 1
            self._cond.notify()  # service events are rare: no need to save the wake-up
        try:
            waiter.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise AuditUnavailable("the audit store did not answer in time") from exc

    # --- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        idle = max(min(self._digest_interval / 2, 5.0), 0.05)
        gap = self._commit_gap
        last_commit, last_size = 0.0, 0
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._waiting = True
                    self._cond.wait(idle)
                    self._waiting = False
                # Group commit: under concurrency (the last batch had company), at most one commit per
                # ``commit_gap``; what arrives meanwhile joins the batch. Each commit costs a
                # transaction and an fsync, so this trades a few milliseconds of latency for much less
                # work per request. A lone client (batches of one) never waits.
                delay = last_commit + gap - time.monotonic()
                if delay > 0 and last_size > 1 and self._queued < self._max_batch and not self._closed:
                    self._cond.wait(delay)
                if not self._queue:
                    if self._closed:
                        return
                    batch: list[WaitingRecord] = []
                else:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    self._queued -= len(batch)
            try:
                if batch:
                    last_commit, last_size = time.monotonic(), len(batch)
                    self._write(batch)
                else:
                    self._idle_digest()
            except BaseException:  # never let the thread die with futures waiting
                log.exception("audit writer failed")
                self._settle(batch, ok=False)

    def _write(self, batch: list[WaitingRecord]) -> None:
        self._settle(batch, ok=self._ledger.append(self._sinks, [item[0] for item in batch]))

    def _idle_digest(self) -> None:
        self._ledger.idle_digest(self._sinks)

    @staticmethod
    def _settle(batch: list[WaitingRecord], *, ok: bool) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[WaitingRecord]] = {}
        for item in batch:
            waiter = item[1]
            if isinstance(waiter, asyncio.Future):
                by_loop.setdefault(waiter.get_loop(), []).append(item)
            elif ok:
                waiter.set_result(None)
            else:
                waiter.set_exception(AuditUnavailable("the audit record could not be written"))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(release, items, ok)

    # --- management ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self._ledger.stats(self._queued + len(self._staged))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the sinks."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        for sink in self._sinks:
            try:
                sink.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("closing audit sink %s failed", sink.name)


def release(items: Sequence[WaitingRecord], ok: bool) -> None:
    """On the loop thread: release each response, or (fail closed) answer KMSInternalException."""
    for _, future, response, request_id in items:
        if future.done() or not isinstance(future, asyncio.Future):
            continue
        future.set_result(response if ok and response is not None else internal_error_response(request_id))
