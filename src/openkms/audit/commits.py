"""What both commit loops share (the per-process ``AuditWriter`` and the node's ``NodeCommitter``): appending
a batch to every sink, the failure and recovery log lines, idle digests and the batch statistics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from openkms.audit.sink import AuditSink, PendingEvent

log = logging.getLogger("openkms.audit")

_BUCKETS = (1, 4, 16, 64, 256, 1024)  # batch-size histogram upper bounds (last bucket: larger)
_LOG_EVERY = 10.0  # seconds between repeated "audit store unavailable" log lines


class AuditUnavailable(Exception):
    """The record could not be made durable; the request (or the background action) must fail."""


class CommitLedger:
    """Appends batches to the sinks and keeps the statistics; used by one commit thread only."""

    def __init__(self, digest_interval: float, clock: Callable[[], float] = time.time) -> None:
        self._digest_interval = digest_interval
        self._clock = clock
        self.batches = self.events = self.failed_batches = self.largest = 0
        self._histogram = [0] * (len(_BUCKETS) + 1)
        self._failing_since: float | None = None
        self._last_failure_log = 0.0
        self._last_digest_check = time.monotonic()

    def append(self, sinks: Sequence[AuditSink], events: Sequence[PendingEvent]) -> bool:
        """Make ``events`` durable in every sink. False (and nothing may be treated as written) on failure.

        SECURITY INVARIANT (fail closed): True only after every sink returned from ``append``."""
        now = self._clock()
        try:
            for sink in sinks:
                sink.append(events, now)
        except Exception as exc:
            self.failed(exc, len(events))
            return False
        if self._failing_since is not None:
            log.warning("audit store recovered after %.1f s", time.monotonic() - self._failing_since)
            self._failing_since = None
        self._count(len(events))
        return True

    def failed(self, exc: BaseException, count: int) -> None:
        self.failed_batches += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._last_failure_log >= _LOG_EVERY:
            self._last_failure_log = now
            # the message names the store's error only (never an event's content)
            log.error(
                "audit store unavailable: %d request(s) failed closed (%s: %s)",
                count, type(exc).__name__, first_line(exc),
            )  # fmt: skip

    def idle_digest(self, sinks: Sequence[AuditSink] | Callable[[], Sequence[AuditSink] | None]) -> None:
        """Write a signed digest when one is due and no events came (called when the loop is idle); ``sinks``
        may be a callable, called only when a digest is due."""
        if time.monotonic() - self._last_digest_check < self._digest_interval:
            return
        self._last_digest_check = time.monotonic()
        if callable(sinks):
            sinks = sinks() or ()
        now = self._clock()
        for sink in sinks:
            try:
                sink.digest_if_due(now)
            except Exception as exc:
                log.warning("audit digest of sink %s failed: %s", sink.name, first_line(exc))

    def _count(self, size: int) -> None:
        self.batches += 1
        self.events += size
        self.largest = max(self.largest, size)
        for index, bound in enumerate(_BUCKETS):
            if size <= bound:
                self._histogram[index] += 1
                break
        else:
            self._histogram[-1] += 1

    def stats(self, queued: int) -> dict[str, Any]:
        labels = [f"<={b}" for b in _BUCKETS] + [f">{_BUCKETS[-1]}"]
        return {
            "batches": self.batches,
            "events": self.events,
            "failed_batches": self.failed_batches,
            "largest_batch": self.largest,
            "mean_batch": round(self.events / self.batches, 2) if self.batches else 0.0,
            "batch_sizes": dict(zip(labels, self._histogram, strict=True)),
            "queued": queued,
            "healthy": self._failing_since is None,
        }


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
