"""Where ``openkms audit verify`` reads chains from: the database sink, or JSON-lines files (the file
sink's files, or an ``openkms audit export``)."""

from __future__ import annotations

import calendar
import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from openkms.audit.chain import GENESIS_HEX, canonical
from openkms.audit.reader import AuditReader, StoredBlock
from openkms.audit.verify import ChainRecord, ChainVerifier, DigestRecord, Problem, Report, check_digests

_ROTATED = re.compile(r"-(\d{12})$")


def _block_records(block: StoredBlock, problems: list[Problem]) -> Iterator[ChainRecord]:
    """The chain records of one block; its header (seqs, count, times) must agree with its lines, or
    queries that select blocks by those columns could miss events."""
    where = f"block {block.first_seq}"
    records: list[ChainRecord] = []
    times: list[float] = []
    for number, line in enumerate(block.events.split("\n"), 1):
        try:
            record = orjson.loads(line)
            seq, prev, digest = int(record["seq"]), str(record["prev"]), str(record["hash"])
            body = canonical(record["event"])
            event_time = record["event"].get("eventTime", "")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            problems.append(Problem("altered", None, f"{where} line {number}", "not a chain record"))
            continue
        records.append(ChainRecord(seq, prev, digest, body, f"seq {seq}, {where} line {number}"))
        with contextlib.suppress(ValueError, TypeError):
            times.append(calendar.timegm(time.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ")))
    header_ok = (
        bool(records)
        and records[0].seq == block.first_seq
        and records[-1].seq == block.last_seq
        and len(records) == block.count
        and all(int(block.min_time) <= t <= block.max_time for t in times)
    )
    if not header_ok:
        # reported after the chain's own findings (no seq), which name the event itself
        detail = f"the columns of the block at seq {block.first_seq} disagree with its events"
        problems.append(Problem("altered", None, where, detail))
    yield from records


def verify_database(engine: Engine, public_keys: Mapping[str, bytes]) -> Report:
    reader = AuditReader(engine)
    head = reader.head()
    if head is None:
        report = Report()
        report.notes.append("the database has no audit chain yet")
        return report
    digests = reader.digests()
    verifier = ChainVerifier(head.first_seq, head.first_prev_hash)
    verifier.want(d.last_seq for d in digests)
    header_problems: list[Problem] = []
    records = (
        record
        for block in reader.blocks(after_seq=head.first_seq - 1)
        if block.first_seq <= head.seq
        for record in _block_records(block, header_problems)
    )
    report = verifier.run(records)
    report.problems.extend(header_problems)
    last = report.last_seq if report.last_seq is not None else head.first_seq - 1
    if last < head.seq:
        detail = f"seq {last + 1} to {head.seq} missing (the head is at {head.seq})"
        report.problems.append(Problem("removed", last + 1, "end of chain", detail))
    elif head.seq >= head.first_seq and report.last_hash != head.hash:
        detail = "the head does not match the last event"
        report.problems.append(Problem("altered", head.seq, "chain head", detail))
    check_digests(
        (DigestRecord(d.body.encode("utf-8"), d.signature, f"digest {d.number}") for d in digests),
        verifier.hashes_at,
        public_keys,
        report,
        first_seq=head.first_seq,
    )
    if head.first_seq > 1:
        report.notes.append(f"events before seq {head.first_seq} were removed by retention")
    _note_tail(report)
    return report


def _lines(paths: Sequence[Path]) -> Iterator[tuple[str, int, dict[str, Any] | None]]:
    for path in paths:
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    parsed = orjson.loads(line)
                except orjson.JSONDecodeError:
                    parsed = None
                yield f"{path.name} line {number}", number, parsed if isinstance(parsed, dict) else None


def _expected_start(paths: Sequence[Path]) -> tuple[int | None, str | None]:
    """Where the chain in ``paths`` must start: a rotated file names its first seq; an export says so in
    its header line; otherwise the chain must start at seq 1."""
    first = paths[0]
    match = _ROTATED.search(first.stem)
    if match:
        return int(match.group(1)), None
    for _, _, record in _lines(paths[:1]):
        if record is not None and isinstance(record.get("export"), dict):
            header = record["export"]
            return int(header.get("firstSeq", 1)), str(header.get("firstPrev", GENESIS_HEX))
        break
    return 1, GENESIS_HEX


def verify_files(paths: Sequence[Path], public_keys: Mapping[str, bytes]) -> Report:
    digests: list[DigestRecord] = []
    for where, _, record in _lines(paths):
        if record is not None and isinstance(record.get("digest"), dict):
            digests.append(DigestRecord(canonical(record["digest"]), str(record.get("signature", "")), where))
    start_seq, start_prev = _expected_start(paths)
    first_record = next(_records(paths, []), None)
    if start_prev is None:  # a rotated file: the hash before it is in the (removed) previous file
        start_prev = first_record.prev if first_record is not None else GENESIS_HEX
    verifier = ChainVerifier(start_seq or 1, start_prev)
    verifier.want(_last_seqs(digests))
    unreadable: list[Problem] = []
    report = verifier.run(_records(paths, unreadable))
    report.problems.extend(unreadable)
    check_digests(digests, verifier.hashes_at, public_keys, report, first_seq=start_seq or 1)
    if start_seq and start_seq > 1:
        report.notes.append(f"the files start at seq {start_seq}; earlier events are not in them")
    _note_tail(report)
    return report


def _records(paths: Sequence[Path], unreadable: list[Problem]) -> Iterator[ChainRecord]:
    for where, _, record in _lines(paths):
        if record is None:
            unreadable.append(Problem("altered", None, where, "not a JSON record"))
            continue
        if "digest" in record or "export" in record:
            continue
        try:
            seq, prev, digest = int(record["seq"]), str(record["prev"]), str(record["hash"])
            body = canonical(record["event"])
        except (KeyError, TypeError, ValueError):
            unreadable.append(Problem("altered", None, where, "not a chain record"))
            continue
        yield ChainRecord(seq, prev, digest, body, where)


def _last_seqs(digests: Sequence[DigestRecord]) -> list[int]:
    seqs = []
    for d in digests:
        try:
            seqs.append(int(orjson.loads(d.body)["lastSeq"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return seqs


def _note_tail(report: Report) -> None:
    if report.last_seq is not None and report.last_seq > report.last_digest_seq:
        start = max(report.last_digest_seq + 1, report.first_seq or 1)
        report.notes.append(
            f"seq {start} to {report.last_seq} are not yet covered by a signed digest (chain only)"
        )
