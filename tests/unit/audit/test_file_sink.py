"""The JSON-lines sink: one verifiable chain across appenders, rotation, torn lines, failed writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openkms.audit.chain import canonical
from openkms.audit.file_sink import FileSink, chain_files, rotated_files
from openkms.audit.sink import PendingEvent
from openkms.audit.verify_io import verify_files
from openkms.crypto.digest_signing import DigestSigner, generate_seed

SIGNER = DigestSigner(generate_seed())
KEYS = {SIGNER.key_id: SIGNER.public_raw}


def events(n: int, start: int = 0) -> list[PendingEvent]:
    return [PendingEvent(canonical({"eventName": "Encrypt", "n": start + i}), 1.0, ()) for i in range(n)]


def test_two_appenders_share_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    a = FileSink(path, SIGNER, 0.001, 1 << 20)
    b = FileSink(path, SIGNER, 0.001, 1 << 20)  # another process of the node
    for i in range(10):
        (a if i % 2 else b).append(events(3, i * 3), now=float(i))
    a.close()
    b.close()
    report = verify_files(chain_files(path), KEYS)
    assert report.ok, report.problems
    assert report.events == 30 and report.digests >= 5
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_rotation_keeps_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path, SIGNER, 1000.0, max_bytes=4096, keep=0)
    for i in range(40):
        sink.append(events(2, i * 2), now=1.0)
    sink.close()
    assert len(rotated_files(path)) >= 3
    report = verify_files(chain_files(path), KEYS)
    assert report.ok, report.problems
    assert report.events == 80


def test_rotation_retention_keeps_a_verifiable_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path, SIGNER, 1000.0, max_bytes=4096, keep=2)
    for i in range(40):
        sink.append(events(2, i * 2), now=1.0)
    sink.close()
    assert len(rotated_files(path)) == 2
    report = verify_files(chain_files(path), KEYS)
    assert report.ok, report.problems
    assert any("earlier events" in note for note in report.notes)


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path, SIGNER, 1000.0, 1 << 20)
    sink.append(events(3), now=1.0)
    sink.close()
    with open(path, "ab") as handle:  # a crash in the middle of a write
        handle.write(b'{"seq":4,"prev":"ab')
    (tmp_path / "audit.jsonl.state").unlink()
    again = FileSink(path, SIGNER, 1000.0, 1 << 20)
    again.append(events(2, 3), now=2.0)
    again.close()
    report = verify_files([path], KEYS)
    assert report.ok, report.problems
    assert report.events == 5


def test_failed_write_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(path, SIGNER, 1000.0, 1 << 20)
    sink.append(events(2), now=1.0)
    real_fdatasync = os.fdatasync

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OSError):
        sink.append(events(2, 2), now=1.0)
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    sink.append(events(2, 4), now=1.0)
    sink.close()
    report = verify_files([path], KEYS)
    assert report.ok, report.problems
    assert report.events == 4
