"""Tampering with the stored log: ``openkms audit verify`` detects each change and names the place.

Database (SQLite and PostgreSQL): edit, delete, reorder and insert events in ``audit_blocks``, and rewrite
the whole chain with fresh hashes (only the signed digests catch that). JSON-lines file: the same four
changes on a copy of the file sink's file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, insert, select, update
from tests.integration.audit_support import audited, client, secret_credential
from tests.support.servers import Deployment, ServerProcess

from openkms.app import open_audit_engine
from openkms.audit.chain import canonical, event_line
from openkms.config import load_settings
from openkms.storage.tables import audit_blocks

__all__ = ["audited"]

EVENTS = 24


@pytest.fixture(scope="module")
def recorded(audited: Deployment) -> Deployment:
    """A log of a few dozen calls with signed digests, then the server stopped (nothing else appends)."""
    server = ServerProcess(audited)
    try:
        kms = client(server.url, *secret_credential(audited))
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        for i in range(EVENTS):
            kms.encrypt(KeyId=key, Plaintext=b"x%d" % i)
            if i in (8, 16):
                time.sleep(1.1)  # let a digest cover what came before
        time.sleep(1.1)
        kms.list_keys()
    finally:
        server.stop()
    assert ": OK" in audited.cli("audit", "verify").stdout
    return audited


@pytest.fixture
def blocks(recorded: Deployment) -> Iterator[Any]:
    """The audit blocks table of the deployment; restored after each test."""
    engine = open_audit_engine(load_settings(environ=recorded.env()))
    with engine.begin() as conn:
        saved = [
            dict(row._mapping)
            for row in conn.execute(select(audit_blocks).order_by(audit_blocks.c.first_seq))
        ]
    yield engine
    with engine.begin() as conn:
        conn.execute(delete(audit_blocks))
        conn.execute(insert(audit_blocks), saved)
    engine.dispose()
    assert ": OK" in recorded.cli("audit", "verify").stdout


def first_problem(dep: Deployment, *args: str) -> tuple[str, int]:
    result = dep.cli("audit", "verify", *args, check=False)
    assert result.returncode == 1, result.stdout
    match = re.search(r"first problem: (\w+) seq (\d+)", result.stdout)
    assert match, result.stdout
    return match.group(1), int(match.group(2))


def line_of(engine: Any, seq: int) -> tuple[int, list[bytes], int]:
    """(block first_seq, the block's lines, index of seq's line)."""
    with engine.begin() as conn:
        row = conn.execute(
            select(audit_blocks.c.first_seq, audit_blocks.c.events).where(
                audit_blocks.c.first_seq <= seq, audit_blocks.c.last_seq >= seq
            )
        ).one()
    lines = row[1].encode().split(b"\n")
    index = next(i for i, line in enumerate(lines) if orjson.loads(line)["seq"] == seq)
    return row[0], lines, index


def set_lines(engine: Any, first_seq: int, lines: list[bytes]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(audit_blocks)
            .where(audit_blocks.c.first_seq == first_seq)
            .values(events=b"\n".join(lines).decode())
        )


def test_db_edited_event(recorded: Deployment, blocks: Any) -> None:
    first, lines, i = line_of(blocks, 10)
    lines[i] = lines[i].replace(b'"Encrypt"', b'"Decrypt"')
    set_lines(blocks, first, lines)
    assert first_problem(recorded) == ("ALTERED", 10)


def test_db_deleted_event(recorded: Deployment, blocks: Any) -> None:
    first, lines, i = line_of(blocks, 10)
    if len(lines) == 1:
        with blocks.begin() as conn:
            conn.execute(delete(audit_blocks).where(audit_blocks.c.first_seq == first))
    else:
        del lines[i]
        set_lines(blocks, first, lines)
    assert first_problem(recorded) == ("REMOVED", 10)


def test_db_reordered_events(recorded: Deployment, blocks: Any) -> None:
    first_a, lines_a, i = line_of(blocks, 10)
    first_b, lines_b, j = line_of(blocks, 11)
    if first_a == first_b:
        lines_a[i], lines_a[j] = lines_a[j], lines_a[i]
        set_lines(blocks, first_a, lines_a)
    else:
        lines_a[i], lines_b[j] = lines_b[j], lines_a[i]
        set_lines(blocks, first_a, lines_a)
        set_lines(blocks, first_b, lines_b)
    assert first_problem(recorded) == ("REORDERED", 10)


def test_db_inserted_event(recorded: Deployment, blocks: Any) -> None:
    """A forged record with a correct hash, linked after seq 9, placed before the real seq 10."""
    first, lines, i = line_of(blocks, 10)
    real = orjson.loads(lines[i])
    event = dict(real["event"], eventName="Decrypt", eventID="00000000-0000-4000-8000-000000000000")
    body = canonical(event)
    prev = bytes.fromhex(real["prev"])
    forged = event_line(10, prev, hashlib.sha256(prev + (10).to_bytes(8, "big") + body).digest(), body)
    lines.insert(i, forged)
    set_lines(blocks, first, lines)
    assert first_problem(recorded) == ("INSERTED", 10)


def test_db_rewritten_chain_caught_by_digest(recorded: Deployment, blocks: Any) -> None:
    """Edit seq 5 and recompute every later hash: the chain is consistent again, the digests are not."""
    with blocks.begin() as conn:
        rows = conn.execute(
            select(audit_blocks.c.first_seq, audit_blocks.c.events).order_by(audit_blocks.c.first_seq)
        ).all()
    prev = bytes(32)
    for first, text in rows:
        out = []
        for line in text.encode().split(b"\n"):
            record = orjson.loads(line)
            if record["seq"] == 5:
                record["event"]["eventName"] = "Decrypt"
            body = canonical(record["event"])
            digest = hashlib.sha256(prev + record["seq"].to_bytes(8, "big") + body).digest()
            out.append(event_line(record["seq"], prev, digest, body))
            prev = digest
        set_lines(blocks, first, out)
    result = recorded.cli("audit", "verify", check=False)
    assert result.returncode == 1
    assert re.search(
        r"ALTERED seq \d+ \(digest \d+\): events seq \d+ to \d+ do not match signed digest", result.stdout
    )


@pytest.fixture
def log_copy(recorded: Deployment, tmp_path: Path) -> Path:
    source = load_settings(environ=recorded.env()).audit_file
    target = tmp_path / "copy.jsonl"
    shutil.copy(source, target)
    return target


def rewrite(path: Path, change: Any) -> None:
    lines = path.read_bytes().splitlines()
    change(lines, {orjson.loads(line).get("seq"): n for n, line in enumerate(lines)})
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_file_edited_event(recorded: Deployment, log_copy: Path) -> None:
    rewrite(
        log_copy, lambda lines, at: lines.__setitem__(at[7], lines[at[7]].replace(b"Encrypt", b"Decrypt"))
    )
    assert first_problem(recorded, "--file", str(log_copy)) == ("ALTERED", 7)


def test_file_deleted_event(recorded: Deployment, log_copy: Path) -> None:
    rewrite(log_copy, lambda lines, at: lines.__delitem__(at[7]))
    assert first_problem(recorded, "--file", str(log_copy)) == ("REMOVED", 7)


def test_file_reordered_events(recorded: Deployment, log_copy: Path) -> None:
    def swap(lines: list[bytes], at: dict[Any, int]) -> None:
        lines[at[7]], lines[at[8]] = lines[at[8]], lines[at[7]]

    rewrite(log_copy, swap)
    assert first_problem(recorded, "--file", str(log_copy)) == ("REORDERED", 7)


def test_file_inserted_event(recorded: Deployment, log_copy: Path) -> None:
    def forge(lines: list[bytes], at: dict[Any, int]) -> None:
        real = orjson.loads(lines[at[7]])
        body = canonical(dict(real["event"], eventID="forged"))
        prev = bytes.fromhex(real["prev"])
        digest = hashlib.sha256(prev + (7).to_bytes(8, "big") + body).digest()
        lines.insert(at[7], event_line(7, prev, digest, body))

    rewrite(log_copy, forge)
    assert first_problem(recorded, "--file", str(log_copy)) == ("INSERTED", 7)
