"""Tamper evidence: the chain and the signed digests name the first place that was changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from openkms.audit.chain import GENESIS, DigestState, canonical, digest_line, event_line, link
from openkms.audit.sink import sign_digest
from openkms.audit.verify import Report
from openkms.audit.verify_io import verify_files
from openkms.crypto.digest_signing import DigestSigner, generate_seed

SIGNER = DigestSigner(generate_seed())
KEYS = {SIGNER.key_id: SIGNER.public_raw}


def chain_lines(n: int = 30, digest_every: int = 10) -> list[bytes]:
    lines: list[bytes] = []
    prev, state = GENESIS, DigestState(0, 0, 0.0, GENESIS.hex())
    for seq in range(1, n + 1):
        body = canonical({"eventName": "Encrypt", "eventID": f"id-{seq}", "requestID": f"r-{seq}"})
        digest = link(prev, seq, body)
        lines.append(event_line(seq, prev, digest, body))
        prev = digest
        if seq % digest_every == 0:
            signed = sign_digest(
                SIGNER, chain="file", previous=state, last_seq=seq, last_hash=prev, now=float(seq)
            )
            lines.append(digest_line(signed.body, signed.signature_b64))
            state = DigestState(signed.number, seq, float(seq), signed.record_hash)
    return lines


def index_of(lines: list[bytes], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(b'{"seq":%d,' % seq))


def verify(tmp_path: Path, lines: list[bytes]) -> Report:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return verify_files([path], KEYS)


def forged(seq: int, prev_hex: str) -> bytes:
    body = canonical({"eventName": "Decrypt", "eventID": "forged", "requestID": "forged"})
    return event_line(seq, bytes.fromhex(prev_hex), link(bytes.fromhex(prev_hex), seq, body), body)


def test_untouched_chain_verifies(tmp_path: Path) -> None:
    report = verify(tmp_path, chain_lines())
    assert report.ok, report.problems
    assert report.events == 30 and report.digests == 3 and report.last_digest_seq == 30


def test_edited_event(tmp_path: Path) -> None:
    lines = chain_lines()
    i = index_of(lines, 12)
    lines[i] = lines[i].replace(b'"Encrypt"', b'"Decrypt"')
    first = verify(tmp_path, lines).first_problem
    assert first is not None and (first.kind, first.seq) == ("altered", 12)


def test_removed_event(tmp_path: Path) -> None:
    lines = chain_lines()
    del lines[index_of(lines, 12)]
    first = verify(tmp_path, lines).first_problem
    assert first is not None and (first.kind, first.seq) == ("removed", 12)


def test_reordered_events(tmp_path: Path) -> None:
    lines = chain_lines()
    i, j = index_of(lines, 12), index_of(lines, 13)
    lines[i], lines[j] = lines[j], lines[i]
    first = verify(tmp_path, lines).first_problem
    assert first is not None and (first.kind, first.seq) == ("reordered", 12)


def test_inserted_event(tmp_path: Path) -> None:
    lines = chain_lines()
    i = index_of(lines, 12)
    prev = orjson.loads(lines[i])["prev"]
    lines.insert(i, forged(12, prev))  # a well-formed record claiming seq 12, linked to seq 11
    report = verify(tmp_path, lines)
    first = report.first_problem
    assert first is not None and (first.kind, first.seq) == ("inserted", 12)
    assert f"line {i + 1}" in first.where  # the forged line, not the genuine one after it


def test_inserted_event_with_bad_hash(tmp_path: Path) -> None:
    lines = chain_lines()
    i = index_of(lines, 12)
    lines.insert(i, event_line(12, bytes(32), bytes(32), canonical({"eventName": "x"})))
    first = verify(tmp_path, lines).first_problem
    assert first is not None and (first.kind, first.seq) == ("inserted", 12)


def test_rewritten_chain_caught_by_digest(tmp_path: Path) -> None:
    """Recomputing every hash after an edit keeps the chain consistent, but not the signed digest."""
    out, prev = [], GENESIS
    for line in chain_lines():
        record = orjson.loads(line)
        if "seq" not in record:
            out.append(line)
            continue
        if record["seq"] == 12:
            record["event"]["eventName"] = "Decrypt"
        body = canonical(record["event"])
        digest = link(prev, record["seq"], body)
        out.append(event_line(record["seq"], prev, digest, body))
        prev = digest
    report = verify(tmp_path, out)
    assert not report.ok
    first = report.first_problem
    assert first is not None and first.kind == "altered" and first.seq == 11  # digest 2 covers 11..20
    assert "digest 2" in first.detail


def test_forged_digest_signature(tmp_path: Path) -> None:
    lines = chain_lines()
    i = next(i for i, line in enumerate(lines) if line.startswith(b'{"digest"'))
    record = orjson.loads(lines[i])
    record["digest"]["lastSeq"] = 9
    lines[i] = digest_line(canonical(record["digest"]), record["signature"])
    report = verify(tmp_path, lines)
    assert any(p.kind == "digest" and "bad signature" in p.detail for p in report.problems)


def test_unknown_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(chain_lines()) + b"\n")
    other = DigestSigner(generate_seed())
    report = verify_files([path], {other.key_id: other.public_raw})
    assert any("unknown key" in p.detail for p in report.problems)


def test_removed_digest(tmp_path: Path) -> None:
    lines = chain_lines()
    digests = [i for i, line in enumerate(lines) if line.startswith(b'{"digest"')]
    del lines[digests[1]]
    report = verify(tmp_path, lines)
    assert any(p.kind == "digest" and "does not follow" in p.detail for p in report.problems)


def test_renumbered_after_insert_and_delete(tmp_path: Path) -> None:
    """Records moved by renumbering fail on their own (seq is under the hash)."""
    lines = chain_lines(digest_every=100)
    shifted = []
    for line in lines:
        record = orjson.loads(line)
        if record["seq"] >= 12:
            record["seq"] += 1
        shifted.append(
            b'{"seq":%d,"prev":"%s","hash":"%s","event":%s}'
            % (record["seq"], record["prev"].encode(), record["hash"].encode(), canonical(record["event"]))
        )
    prev = orjson.loads(lines[index_of(lines, 11)])["hash"]
    shifted.insert(index_of(lines, 12), forged(12, prev))
    first = verify(tmp_path, shifted).first_problem
    assert first is not None and (first.kind, first.seq) == ("inserted", 12)


@pytest.mark.parametrize("seq", [1, 30])
def test_ends_of_the_chain(tmp_path: Path, seq: int) -> None:
    lines = chain_lines(digest_every=100)
    i = index_of(lines, seq)
    lines[i] = lines[i].replace(b"Encrypt", b"Encrypu")
    first = verify(tmp_path, lines).first_problem
    assert first is not None and (first.kind, first.seq) == ("altered", seq)


def test_digest_record_hash_is_sha256() -> None:
    body, signature = b"{}", b"sig"
    from openkms.audit.chain import digest_record_hash

    assert digest_record_hash(body, signature) == hashlib.sha256(body + signature).hexdigest()
