"""The node's audit committer: one commit stream for every worker of a server (runs in the master).

Why: with a writer thread in each worker, a commit waited for the worker's own event loop to hand over the
GIL (after every SQLite call and after the fsync) and for the other workers' writers to leave the
database, so a worker's requests spent most of their time waiting for the log while the CPUs idled. Here
the workers only build records (on their event loops) and send them; a thread of the master, which does
little else, owns the sinks::

    worker loop -> CommitStream (stream.py)   build the record, one batch frame per loop pass -> socket
    master      -> NodeCommitter thread       read every frame that is there, append them all to every
                                              sink in one transaction + fsync, ack each batch
    worker loop -> ack frame                  release the batch's responses (or fail them closed)

While one commit runs, the next frames queue in the sockets, so a commit is the node's in-flight work.
Each worker has its own socket pair, created by the master before the fork (``open_channel``), so nothing
outside the server's process tree can reach the committer. The master's own records (the background jobs'
service events) join the same stream through ``record``, so a node has exactly one appender.

SECURITY INVARIANT (fail closed): a batch is acknowledged as durable only after every sink returned from
``append`` (``CommitLedger.append``); when the sinks cannot be opened (sealed, store down) or append
fails, the batch is acknowledged as failed and its requests answer KMSInternalException. A worker that
loses its channel fails everything in flight and stops (``stream.py``); if the commit thread itself dies,
it drops every channel and stops the master.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from openkms.audit.commits import AuditUnavailable, CommitLedger, first_line
from openkms.audit.sink import AuditSink, PendingEvent
from openkms.audit.wire import FrameReader, WireError, encode_ack, encode_stats

log = logging.getLogger("openkms.audit")

_READ_SIZE = 1 << 18
_STATS_EVERY = 1.0  # seconds between statistics pushed to the workers (when they changed)

SinkSource = Callable[[], Sequence[AuditSink] | None]
"""The sinks to append to now, or None when there are none (a sealed node); called before each commit."""


class _Channel:
    """The committer's end of one worker's socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.reader = FrameReader()
        self.out = bytearray()
        self.open = True


# Who waits for a batch's ack: a worker's channel, or a thread of the master blocked in ``record``.
_Waiter: TypeAlias = _Channel | concurrent.futures.Future[bool]


class NodeCommitter:
    def __init__(
        self,
        sinks: SinkSource,
        *,
        digest_interval: float = 60.0,
        commit_gap: float = 0.0,
        max_batch: int = 2048,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sinks = sinks
        self._ledger = CommitLedger(digest_interval, clock)
        self._idle = max(min(digest_interval / 2, 5.0), 0.05)
        self._gap = commit_gap
        self._max_batch = max_batch
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._new: list[_Channel] = []
        self._local: list[tuple[concurrent.futures.Future[bool], list[PendingEvent]]] = []
        self._channels: list[_Channel] = []
        self._closed = False
        self._stats: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="openkms-audit-committer", daemon=True)

    # --- the master's side --------------------------------------------------------------------------
    def start(self) -> None:
        # The thread must never take a process signal: the master waits for its signals with sigtimedwait
        # on the main thread, and a SIGTERM delivered to this thread would kill the master on the spot.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def open_channel(self) -> socket.socket:
        """A new worker's end of its channel (call before forking it; close it in the master after)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._new.append(_Channel(mine))
        self._wake()
        return theirs

    def record(self, events: Sequence[PendingEvent], timeout: float = 60.0) -> None:
        """From a thread of the master (not the commit thread): append ``events`` with the next commit and
        return once they are durable; raise ``AuditUnavailable`` if they are not (fail closed)."""
        waiter: concurrent.futures.Future[bool] = concurrent.futures.Future()
        with self._lock:
            if self._closed or not self._thread.is_alive():
                raise AuditUnavailable("the audit committer is not running")
            self._local.append((waiter, list(events)))
        self._wake()
        try:
            durable = waiter.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise AuditUnavailable("the audit store did not answer in time") from exc
        if not durable:
            raise AuditUnavailable("the audit record could not be written")

    def forget_in_child(self) -> None:
        """In a freshly forked worker: close the committer's descriptors this process inherited (the
        thread does not exist here). Takes no lock: another thread may have held one at the fork."""
        for channel in [*self._channels, *self._new]:
            with contextlib.suppress(OSError):
                channel.sock.close()
        with contextlib.suppress(OSError):
            self._selector.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def stats(self) -> dict[str, Any]:
        return self._ledger.stats(0)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what has arrived, then stop the thread and close the sinks' resources."""
        with self._lock:  # ``record`` checks under the lock: nothing is queued after the last pass
            self._closed = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

    # --- the commit thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # never leave workers waiting for acks that cannot come: dropping the channels makes every
            # worker fail its requests in flight and refuse new ones (fail closed)
            log.exception("audit committer failed: stopping the server")
            self._shutdown()
            os.kill(os.getpid(), signal.SIGTERM)  # the master stops gracefully rather than serve unaudited

    def _loop(self) -> None:
        pending: list[tuple[_Waiter, int, list[PendingEvent]]] = []
        count = 0
        # Workers keep one batch in flight and answer each ack at once with their next batch (empty if they
        # have nothing), so after a commit the committer knows which workers it still hears from: it
        # commits as soon as all of them have answered, which makes each commit everything the node has
        # in flight, with no fixed wait. ``commit_gap`` bounds the wait for a slow worker.
        expecting: set[_Channel] = set()
        last_commit_end = 0.0
        next_stats = time.monotonic() + _STATS_EVERY
        while True:
            now = time.monotonic()
            if pending:
                timeout = 0.0 if not expecting else max(last_commit_end + self._gap - now, 0.0)
            else:
                timeout = min(self._idle, max(next_stats - now, 0.0) + 0.001)
            for key, mask in self._selector.select(timeout):
                channel = key.data
                if channel is None:
                    count += self._adopt(pending)
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._send(channel, b"")
                if mask & selectors.EVENT_READ:
                    count += self._receive(channel, pending)
                    expecting.discard(channel)
            closing = self._closed
            now = time.monotonic()
            if pending and (
                not expecting or closing or count >= self._max_batch or now >= last_commit_end + self._gap
            ):
                expecting = self._commit(pending)
                last_commit_end = time.monotonic()
                pending, count = [], 0
            elif not pending:
                self._safely(self._idle_digest)
            if now >= next_stats:
                next_stats = now + _STATS_EVERY
                self._push_stats()
            if closing and not pending:
                self._shutdown()
                return

    def _adopt(self, pending: list[tuple[_Waiter, int, list[PendingEvent]]]) -> int:
        """Take new worker channels and the master's own records; return the number of events added."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass
        with self._lock:
            new, self._new = self._new, []
            local, self._local = self._local, []
        for channel in new:
            self._channels.append(channel)
            self._selector.register(channel.sock, selectors.EVENT_READ, channel)
        for waiter, events in local:
            pending.append((waiter, 0, events))
        return sum(len(events) for _, events in local)

    def _receive(self, channel: _Channel, pending: list[tuple[_Waiter, int, list[PendingEvent]]]) -> int:
        """Read what the worker sent; return the number of events added to ``pending`` (an empty batch is
        a worker's "nothing more for now" and needs no ack)."""
        added = 0
        try:
            while True:
                try:
                    data = channel.sock.recv(_READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    self._drop(channel, None)  # the worker exited
                    break
                channel.reader.feed(data)
                if len(data) < _READ_SIZE:
                    break
            for batch_id, events in channel.reader.batches():
                if events:
                    pending.append((channel, batch_id, events))
                    added += len(events)
        except (OSError, WireError) as exc:
            self._drop(channel, exc)
        return added

    def _commit(self, pending: list[tuple[_Waiter, int, list[PendingEvent]]]) -> set[_Channel]:
        """Append the pending batches, ack each one; return the channels acked (they answer next)."""
        events = [event for _, _, batch in pending for event in batch]
        try:
            sinks = self._sinks()
        except Exception as exc:
            self._ledger.failed(exc, len(events))
            sinks = None
        else:
            if sinks is None:
                self._ledger.failed(RuntimeError("the node is sealed"), len(events))
        ok = sinks is not None and self._ledger.append(sinks, events)
        acks: dict[_Channel, list[bytes]] = {}
        for waiter, batch_id, _ in pending:
            if isinstance(waiter, _Channel):
                acks.setdefault(waiter, []).append(encode_ack(batch_id, ok))
            else:
                waiter.set_result(ok)  # SECURITY INVARIANT: True only after every sink appended the batch
        for channel, frames in acks.items():
            self._send(channel, b"".join(frames))
        return {channel for channel in acks if channel.open}

    def _send(self, channel: _Channel, data: bytes) -> None:
        if not channel.open:
            return
        channel.out += data
        try:
            sent = channel.sock.send(channel.out)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._drop(channel, exc)
            return
        del channel.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if channel.out else 0)
        if self._selector.get_key(channel.sock).events != events:
            self._selector.modify(channel.sock, events, channel)

    def _drop(self, channel: _Channel, error: BaseException | None) -> None:
        if not channel.open:
            return
        channel.open = False
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            # a worker that exits with frames still unread (a stop, a crash) resets its end: the same as
            # an end of file, and the supervisor reports an unexpected exit of the worker itself
            log.debug("audit channel to a worker closed: %s", first_line(error))
        elif error is not None:
            log.error("audit channel to a worker dropped: %s", first_line(error))
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(channel.sock)
        channel.sock.close()
        self._channels.remove(channel)

    def _push_stats(self) -> None:
        stats = self.stats()
        if stats == self._stats:
            return
        self._stats = stats
        frame = encode_stats(stats)
        for channel in list(self._channels):
            self._send(channel, frame)

    def _idle_digest(self) -> None:
        self._ledger.idle_digest(self._sinks)

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            log.warning("audit committer: %s", first_line(exc))

    def _shutdown(self) -> None:
        with self._lock:
            self._closed = True
            local, self._local = self._local, []
        for waiter, _ in local:
            waiter.set_result(False)  # never committed: the caller fails closed
        for channel in list(self._channels):
            self._drop(channel, None)
        self._selector.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)
