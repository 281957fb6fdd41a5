"""The JSON-lines file sink (optional): one chain across every process of a node, rotated by size.

Lines (``audit.jsonl``)::

    {"seq":1,"prev":"<hex>","hash":"<hex>","event":{...CloudTrail record...}}
    {"digest":{...signed statement...},"signature":"<base64>"}

Appends from the processes of a node are serialised with ``flock`` on ``<file>.lock``; inside the lock a
process finds the chain head from ``<file>.state`` (a cache: trusted only if the file's inode and size
still match, else the file is rescanned), writes the whole batch with one ``write``, ``fdatasync``s it and
only then reports success. A failed write is truncated away, and a torn last line (a crash mid-write) is
cut off at the next append, so the file only ever holds whole, acknowledged batches plus nothing else.
Rotation renames the full file to ``<stem>-<first seq, 12 digits><suffix>``; the chain continues across
files. Several nodes must not share one file: give each node its own path.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import orjson

from openkms.audit.chain import (
    GENESIS_HEX,
    DigestState,
    canonical,
    digest_due,
    digest_line,
    digest_record_hash,
    event_line,
    link,
)
from openkms.audit.sink import PendingEvent, sign_digest
from openkms.crypto.digest_signing import DigestSigner

CHAIN_NAME = "file"


@dataclass(frozen=True, slots=True)
class FileState:
    inode: int
    size: int
    seq: int
    hash: str
    file_first_seq: int  # first seq of the current file
    digest: DigestState


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of ``path``, oldest first."""
    return sorted(path.parent.glob(f"{path.stem}-[0-9]*{path.suffix}"))


def chain_files(path: Path) -> list[Path]:
    """Every file of the chain in order: rotated ones, then the current one."""
    files = rotated_files(path)
    return [*files, path] if path.exists() else files


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FileSink:
    name = CHAIN_NAME

    def __init__(
        self, path: Path, signer: DigestSigner | None, digest_interval: float, max_bytes: int, keep: int = 0
    ) -> None:
        self._path = path
        self._state_path = path.with_name(path.name + ".state")
        self._signer = signer
        self._interval = digest_interval
        self._max_bytes = max_bytes
        self._keep = keep
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = -1
        self._fd_inode = -1
        self._state: FileState | None = None
        self._thread_lock = threading.Lock()

    # --- locking and state --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # INVARIANT: one appender per chain at a time
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        """The append descriptor of the current file (reopened after another process rotated it)."""
        try:
            inode = os.stat(self._path).st_ino
        except FileNotFoundError:
            inode = -2
        if self._fd < 0 or inode != self._fd_inode:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            created = inode == -2
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._fd_inode = os.fstat(self._fd).st_ino
            if created:
                _fsync_dir(self._path.parent)
        return self._fd

    def _current(self) -> FileState:
        """The chain head, consistent with the file on disk (rescans what the caches do not cover)."""
        fd = self._file()
        st = os.fstat(fd)
        base: FileState | None = None
        for candidate in (self._state, self._load_state()):
            if candidate is None or candidate.inode != st.st_ino or candidate.size > st.st_size:
                continue
            if candidate.size == st.st_size:
                self._state = candidate
                return candidate
            if base is None or candidate.size > base.size:
                base = candidate
        return self._rescan(fd, st.st_ino, base)

    def _load_state(self) -> FileState | None:
        try:
            raw = orjson.loads(self._state_path.read_bytes())
            digest = DigestState(*raw["digest"])
            return FileState(
                raw["inode"], raw["size"], raw["seq"], raw["hash"], raw["file_first_seq"], digest
            )
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def _save_state(self, state: FileState) -> None:
        self._state = state
        d = state.digest
        data = orjson.dumps(
            {
                "inode": state.inode, "size": state.size, "seq": state.seq, "hash": state.hash,
                "file_first_seq": state.file_first_seq, "digest": [d.number, d.last_seq, d.at, d.hash],
            }
        )  # fmt: skip
        # a cache, checked against the file before use: no fsync needed
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, self._state_path)

    def _rescan(self, fd: int, inode: int, base: FileState | None) -> FileState:
        """Read the lines the caches do not cover (all of the file without ``base``); cut a torn line."""
        start = base.size if base is not None else 0
        with open(self._path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            os.ftruncate(fd, start + end)  # a partial line was never acknowledged: drop it
            data = data[:end]
        if base is None:
            previous = self._tail_of_rotated()
            state = FileState(inode, 0, previous.seq, previous.hash, previous.seq + 1, previous.digest)
        else:
            state = base
        for line in data.splitlines():
            state = _apply_line(state, line)
        state = replace(state, size=start + end)
        self._save_state(state)
        return state

    def _tail_of_rotated(self) -> FileState:
        state = FileState(0, 0, 0, GENESIS_HEX, 1, DigestState(0, 0, 0.0, GENESIS_HEX))
        files = rotated_files(self._path)
        if files:
            for line in files[-1].read_bytes().splitlines():
                state = _apply_line(state, line)
        return state

    # --- writing ------------------------------------------------------------------------------------
    def append(self, events: Sequence[PendingEvent], now: float) -> None:
        with self._locked():
            state = self._current()
            if state.size >= self._max_bytes and state.seq >= state.file_first_seq:
                state = self._rotate(state)
            seq, prev = state.seq, bytes.fromhex(state.hash)
            lines: list[bytes] = []
            for e in events:
                seq += 1
                digest = link(prev, seq, e.body)
                lines.append(event_line(seq, prev, digest, e.body) + b"\n")
                prev = digest
            self._commit(state, lines, seq, prev, now)

    def digest_if_due(self, now: float) -> bool:
        if self._signer is None:
            return False
        with self._locked():
            state = self._current()
            if not digest_due(state.digest, state.seq, now, self._interval):
                return False
            self._commit(state, [], state.seq, bytes.fromhex(state.hash), now)
            return True

    def _commit(self, state: FileState, lines: list[bytes], seq: int, last: bytes, now: float) -> None:
        digest_state = state.digest
        if self._signer is not None and digest_due(digest_state, seq, now, self._interval):
            signed = sign_digest(
                self._signer, chain=CHAIN_NAME, previous=digest_state, last_seq=seq, last_hash=last, now=now
            )
            lines.append(digest_line(signed.body, signed.signature_b64) + b"\n")
            digest_state = DigestState(signed.number, seq, now, signed.record_hash)
        data = b"".join(lines)
        fd = self._file()
        try:
            _write_all(fd, data)
            os.fdatasync(fd)  # durable before any request of the batch is answered
        except BaseException:
            try:
                os.ftruncate(fd, state.size)
            except OSError:
                self._state = None  # unknown tail: rescan (and cut) before the next append
            raise
        self._save_state(
            FileState(
                state.inode, state.size + len(data), seq, last.hex(), state.file_first_seq, digest_state
            )
        )

    def _rotate(self, state: FileState) -> FileState:
        target = self._path.with_name(f"{self._path.stem}-{state.file_first_seq:012d}{self._path.suffix}")
        os.rename(self._path, target)
        _fsync_dir(self._path.parent)
        if self._keep > 0:
            for old in rotated_files(self._path)[: -self._keep]:
                old.unlink(missing_ok=True)
        fd = self._file()
        return FileState(os.fstat(fd).st_ino, 0, state.seq, state.hash, state.seq + 1, state.digest)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1


def _apply_line(state: FileState, line: bytes) -> FileState:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return state
    if "seq" in record:
        return replace(state, seq=int(record["seq"]), hash=str(record["hash"]))
    statement = record.get("digest")
    if isinstance(statement, dict):
        body = canonical(statement)
        signature = _b64(record.get("signature", ""))
        digest = DigestState(
            int(statement["number"]),
            int(statement["lastSeq"]),
            parse_time(statement["digestTime"]),
            digest_record_hash(body, signature),
        )
        return replace(state, digest=digest)
    return state


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
