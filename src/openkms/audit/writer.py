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
from openkms.audit.events import EventBuilder
from openkms.audit.sink import AuditSink, PendingEvent

log = logging.getLogger("openkms.audit")

_BUCKETS = (1, 4, 16, 64, 256, 1024)  # batch-size histogram upper bounds (last bucket: larger)
_LOG_EVERY = 10.0  # seconds between repeated "audit store unavailable" log lines


class AuditUnavailable(Exception):
    """The record could not be made durable; the request must fail."""


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """A background action to record (built on the writer thread like every other record)."""

    name: str  # "RotateKey", "DeleteKey"
    account: str
    region: str
    key_id: str
    when: float


# (record, waiter, response to release, request id); service events: (record, waiter, None, "")
_Item = tuple[
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
        self._commit_gap = commit_gap
        self._waiting = False
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Item] = []
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._staged: list[_Item] = []
        self._service_builder = EventBuilder(builder.partition, builder.default_region)
        self._service_lock = threading.Lock()
        self._flush_scheduled = False
        self._closed = False
        # statistics (written by the writer thread only)
        self._batches = self._events = self._failed_batches = self._largest = 0
        self._histogram = [0] * (len(_BUCKETS) + 1)
        self._failing_since: float | None = None
        self._last_failure_log = 0.0
        self._last_digest_check = time.monotonic()
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
                    batch: list[_Item] = []
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

    def _write(self, batch: list[_Item]) -> None:
        events = [item[0] for item in batch]
        now = self._clock()
        try:
            for sink in self._sinks:
                sink.append(events, now)
        except Exception as exc:
            self._failed(exc, len(events))
            self._settle(batch, ok=False)
            return
        if self._failing_since is not None:
            log.warning("audit store recovered after %.1f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        self._settle(batch, ok=True)
        self._count(len(events))

    def _idle_digest(self) -> None:
        if time.monotonic() - self._last_digest_check < self._digest_interval:
            return
        self._last_digest_check = time.monotonic()
        now = self._clock()
        for sink in self._sinks:
            try:
                sink.digest_if_due(now)
            except Exception as exc:
                log.warning("audit digest of sink %s failed: %s", sink.name, _first_line(exc))

    def _failed(self, exc: Exception, count: int) -> None:
        self._failed_batches += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_failure_log >= _LOG_EVERY:
            self._last_failure_log = now
            # the message names the store's error only (never an event's content)
            log.error(
                "audit store unavailable: %d request(s) failed closed (%s: %s)",
                count, type(exc).__name__, _first_line(exc),
            )  # fmt: skip

    @staticmethod
    def _settle(batch: list[_Item], *, ok: bool) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
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
                loop.call_soon_threadsafe(_complete, items, ok)

    def _count(self, size: int) -> None:
        self._batches += 1
        self._events += size
        self._largest = max(self._largest, size)
        for index, bound in enumerate(_BUCKETS):
            if size <= bound:
                self._histogram[index] += 1
                break
        else:
            self._histogram[-1] += 1

    # --- management ---------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        labels = [f"<={b}" for b in _BUCKETS] + [f">{_BUCKETS[-1]}"]
        return {
            "batches": self._batches,
            "events": self._events,
            "failed_batches": self._failed_batches,
            "largest_batch": self._largest,
            "mean_batch": round(self._events / self._batches, 2) if self._batches else 0.0,
            "batch_sizes": dict(zip(labels, self._histogram, strict=True)),
            "queued": self._queued + len(self._staged),
            "healthy": self._failing_since is None,
        }

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


def _complete(items: list[_Item], ok: bool) -> None:
    """On the loop thread: release each response, or (fail closed) answer KMSInternalException."""
    for _, future, response, request_id in items:
        if future.done() or not isinstance(future, asyncio.Future):
            continue
        future.set_result(response if ok and response is not None else internal_error_response(request_id))


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
