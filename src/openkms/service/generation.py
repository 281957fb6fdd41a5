"""A node-local change counter shared by every worker process through a small memory-mapped file.

Writers bump it after committing a change to existing state (a key's state, an alias target, ...); every
request compares it with the value its caches were filled under and drops them when it moved. Reading it
is one 8-byte memory load, so the hot path pays nothing, and a change is visible to every worker of the
node before the writer's response leaves. Other nodes learn of changes by polling the database's own
counter (``Store.get_generation``), see ``ClusterGenerationPoller``.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("openkms.generation")
_FORMAT = "<Q"
_SIZE = 8


class LocalGeneration:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._lock_path = path
        self._thread_lock = threading.Lock()

    def current(self) -> int:
        value: int = struct.unpack_from(_FORMAT, self._map)[0]
        return value

    def bump(self) -> int:
        # flock serialises the read-modify-write across processes; the thread lock within one process
        with self._thread_lock, open(self._lock_path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                value = self.current() + 1
                struct.pack_into(_FORMAT, self._map, 0, value)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return value


class ClusterGenerationPoller:
    """Bumps the local counter when the database counter moved (a change made on another node)."""

    def __init__(
        self, read_cluster: Callable[[], int], local: LocalGeneration, interval: float = 1.0
    ) -> None:
        self._read = read_cluster
        self._local = local
        self._interval = interval
        self._seen: int | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            try:
                value = self._read()
            except Exception:  # a database hiccup must not kill the poller
                log.warning("could not read the cluster generation", exc_info=True)
                continue
            # The first successful read also drops the caches: workers may have filled them before the
            # poller knew the cluster's counter, and a change from another node could fall in between.
            if value != self._seen:
                self._local.bump()
            self._seen = value
