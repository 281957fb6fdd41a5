"""Offline verification of a chain and its signed digests, naming the first place that was tampered with.

Each stored record carries (seq, prev, hash, event). A record is *self-consistent* when
``hash == link(prev, seq, event)`` and *linked* when ``prev`` is the previous record's hash and ``seq`` the
previous seq plus one. Classification of the first failure (a window of neighbours is searched):

* altered    -- the record is not self-consistent and its event belongs nowhere else;
* reordered  -- its event (or the record itself) belongs at another position;
* removed    -- sequence numbers are missing, or the record was renumbered downwards;
* inserted   -- a record that the chain skips, a duplicate seq, or following records renumbered upwards.

Recomputing every hash after a change keeps the chain consistent, but not the signed digests: each digest
names the hash at its last seq and is signed with a key the attacker does not hold, so the change is
reported against the digest that covers it.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from openkms.audit.chain import GENESIS_HEX, canonical, digest_record_hash, link
from openkms.crypto.digest_signing import DigestSignatureError, verify

WINDOW = 16


@dataclass(frozen=True, slots=True)
class ChainRecord:
    seq: int
    prev: str
    hash: str
    body: bytes  # canonical JSON of the event
    where: str  # "seq 42" or "audit.jsonl line 17"
    note: str = ""  # set by the reader when something else about the record is wrong (columns)


@dataclass(frozen=True, slots=True)
class DigestRecord:
    body: bytes  # canonical JSON of the statement
    signature: str  # base64
    where: str


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # altered | removed | reordered | inserted | digest | head
    seq: int | None
    where: str
    detail: str

    def __str__(self) -> str:
        seq = f" seq {self.seq}" if self.seq is not None else ""
        return f"{self.kind.upper()}{seq} ({self.where}): {self.detail}"


@dataclass
class Report:
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = GENESIS_HEX
    digests: int = 0
    last_digest_seq: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        ranked = sorted(self.problems, key=lambda p: (p.seq is None, p.seq or 0))
        return ranked[0] if ranked else None


def _consistent(r: ChainRecord, seq: int | None = None) -> bool:
    try:
        return link(bytes.fromhex(r.prev), r.seq if seq is None else seq, r.body).hex() == r.hash
    except ValueError:  # a prev that is not hex
        return False


def _original_seq(r: ChainRecord) -> int | None:
    """The seq under which a renumbered record was written (searched near its current seq)."""
    for d in range(1, WINDOW + 1):
        for candidate in (r.seq - d, r.seq + d):
            if candidate > 0 and _consistent(r, candidate):
                return candidate
    return None


class ChainVerifier:
    """Feed records in storage order; collect problems in ``report``."""

    def __init__(self, first_seq: int = 1, first_prev: str = GENESIS_HEX, max_problems: int = 20) -> None:
        self.report = Report()
        self._expected_seq = first_seq
        self._expected_prev = first_prev
        self._history: deque[ChainRecord] = deque(maxlen=WINDOW)
        self._max = max_problems
        self._wanted: set[int] = set()
        self.hashes_at: dict[int, list[str]] = {}  # stored hashes at each wanted seq (for the digests)

    def want(self, seqs: Iterable[int]) -> None:
        self._wanted.update(seqs)

    def run(self, records: Iterable[ChainRecord]) -> Report:
        ahead: deque[ChainRecord] = deque()
        for record in records:
            ahead.append(record)
            if len(ahead) > WINDOW:
                self._check(ahead.popleft(), ahead)
        while ahead:
            self._check(ahead.popleft(), ahead)
        return self.report

    def _problem(self, kind: str, seq: int | None, where: str, detail: str) -> None:
        if len(self.report.problems) < self._max:
            self.report.problems.append(Problem(kind, seq, where, detail))

    def _check(self, r: ChainRecord, ahead: deque[ChainRecord]) -> None:
        rep = self.report
        rep.events += 1
        if rep.first_seq is None:
            rep.first_seq = r.seq
        if r.seq in self._wanted:  # (a seq claimed twice is reported as an insertion already)
            self.hashes_at.setdefault(r.seq, []).append(r.hash)
        if r.note:
            self._problem("altered", r.seq, r.where, r.note)
        if not _consistent(r):
            self._classify_inconsistent(r, ahead)
        elif r.seq != self._expected_seq or r.prev != self._expected_prev:
            self._classify_unlinked(r, ahead)
        self._history.append(r)
        self._expected_seq, self._expected_prev = r.seq + 1, r.hash
        rep.last_seq, rep.last_hash = r.seq, r.hash

    def _classify_inconsistent(self, r: ChainRecord, ahead: deque[ChainRecord]) -> None:
        expected = self._expected_seq
        for other in (*self._history, *ahead):
            if other.seq != r.seq and _consistent(
                ChainRecord(other.seq, other.prev, other.hash, r.body, other.where)
            ):
                self._problem(
                    "reordered", r.seq, r.where, f"the event stored here was recorded at seq {other.seq}"
                )
                return
        if ahead and ahead[0].prev == self._expected_prev and r.seq == expected:
            self._problem(
                "inserted", r.seq, r.where, "a record the chain does not contain (the next one skips it)"
            )
            return
        original = _original_seq(r)
        if original is None:
            self._problem("altered", r.seq, r.where, "the event does not match its recorded hash")
        elif original > r.seq:
            if any(_original_seq(o) == r.seq for o in ahead if not _consistent(o)):
                self._problem(
                    "reordered", r.seq, r.where, f"records were renumbered (this one was seq {original})"
                )
            else:
                self._problem(
                    "removed", r.seq, r.where,
                    f"{original - r.seq} event(s) removed before it (it was recorded as seq {original})",
                )  # fmt: skip
        else:
            count = r.seq - original
            self._problem(
                "inserted", original, r.where,
                f"{count} event(s) inserted before seq {r.seq} (it was recorded as seq {original})",
            )  # fmt: skip

    def _classify_unlinked(self, r: ChainRecord, ahead: deque[ChainRecord]) -> None:
        expected = self._expected_seq
        if r.seq < expected:
            same = [h for h in self._history if h.seq == r.seq]
            if same and ahead and ahead[0].prev == r.hash:
                # the chain continues from this record: the earlier one with the same seq was inserted
                self._problem("inserted", r.seq, same[-1].where, f"a forged record claims seq {r.seq}")
            elif same:
                self._problem("inserted", r.seq, r.where, f"a second record claims seq {r.seq}")
            else:
                self._problem("reordered", r.seq, r.where, f"seq {r.seq} appears after seq {expected - 1}")
        elif r.seq > expected:
            if any(o.seq == expected for o in ahead):
                self._problem("reordered", expected, r.where, f"seq {r.seq} appears before seq {expected}")
            elif r.prev == self._expected_prev:
                self._problem("altered", r.seq, r.where, "the sequence number was changed")
            else:
                last = r.seq - 1
                span = f"seq {expected}" if last == expected else f"seq {expected} to {last}"
                self._problem("removed", expected, r.where, f"{span} missing before this record")
        elif ahead and ahead[0].prev == self._expected_prev:
            self._problem(
                "inserted", r.seq, r.where, "a record the chain does not contain (the next one skips it)"
            )
        elif any(o.hash == r.prev for o in ahead):
            self._problem("reordered", r.seq, r.where, "this record follows one that is stored later")
        else:
            self._problem(
                "removed", r.seq, r.where, "the previous record of the chain is missing or was rewritten"
            )


def check_digests(
    digests: Iterable[DigestRecord],
    hashes_at: Mapping[int, list[str]],
    public_keys: Mapping[str, bytes],
    report: Report,
    *,
    first_seq: int = 1,
) -> None:
    """Check signatures, the digest chain, and that each digest's lastHash is the stored hash."""
    previous_hash: str | None = None
    previous_number = previous_last = None
    for d in digests:
        try:
            statement = orjson.loads(d.body)
            number, last_seq, last_hash = (
                int(statement["number"]),
                int(statement["lastSeq"]),
                statement["lastHash"],
            )
            key_id, first = statement["signingKeyId"], int(statement["firstSeq"])
            signature = base64.b64decode(d.signature, validate=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
            report.problems.append(Problem("digest", None, d.where, "unreadable digest"))
            continue
        body = canonical(statement)
        public = public_keys.get(key_id)
        if public is None:
            report.problems.append(Problem("digest", last_seq, d.where, f"signed by unknown key {key_id}"))
        else:
            try:
                verify(public, signature, body)
            except DigestSignatureError:
                report.problems.append(
                    Problem("digest", last_seq, d.where, f"digest {number}: bad signature")
                )
                continue
        if previous_number is not None and (
            number != previous_number + 1
            or statement["previousDigestHash"] != previous_hash
            or first != (previous_last or 0) + 1
        ):
            report.problems.append(
                Problem(
                    "digest", last_seq, d.where, f"digest {number} does not follow digest {previous_number}"
                )
            )
        if last_seq >= first_seq:
            stored = hashes_at.get(last_seq)
            if stored is None:
                report.problems.append(
                    Problem(
                        "removed", last_seq, d.where, f"seq {last_seq}, signed in digest {number}, is missing"
                    )
                )
            elif last_hash not in stored:
                report.problems.append(
                    Problem(
                        "altered", first, d.where,
                        f"events seq {first} to {last_seq} do not match signed digest {number} (rewritten)",
                    )
                )  # fmt: skip
        report.digests += 1
        report.last_digest_seq = max(report.last_digest_seq, last_seq)
        previous_hash = digest_record_hash(body, signature)
        previous_number, previous_last = number, last_seq
