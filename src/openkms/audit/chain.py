"""The hash chain and the signed digests: the tamper evidence of the audit log.

Chain (one per sink; every process and node appends to the same one, see ``db_sink``/``file_sink``)::

    hash(seq) = SHA-256( hash(seq - 1) || seq as 8 bytes big-endian || canonical JSON of the event )
    hash(0)   = 32 zero bytes (GENESIS)

Canonical JSON is orjson with sorted keys and no whitespace; re-encoding a parsed event gives the same
bytes, so a verifier can recompute hashes from an exported or stored copy. Putting ``seq`` under the hash
makes a renumbered (moved) event fail on its own, not only at the next link.

Digest: a statement "the chain's events up to ``lastSeq`` end with ``lastHash``", numbered, chained to
the previous digest by its hash, and signed with Ed25519 by a key held in the key hierarchy. Changing,
removing or re-chaining any event a digest covers breaks the digest, even if every hash was recomputed.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = bytes(32)
GENESIS_HEX = GENESIS.hex()
DIGEST_VERSION = "1"


def canonical(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def link(prev: bytes, seq: int, body: bytes) -> bytes:
    """The chain value of event ``seq`` whose canonical JSON is ``body``."""
    h = hashlib.sha256(prev)
    h.update(seq.to_bytes(8, "big"))
    h.update(body)
    return h.digest()


def event_line(seq: int, prev: bytes, digest: bytes, body: bytes) -> bytes:
    """One chain record as a JSON line (no newline), the format of both sinks and of exports."""
    return b'{"seq":%d,"prev":"%s","hash":"%s","event":%s}' % (
        seq,
        prev.hex().encode(),
        digest.hex().encode(),
        body,
    )


def digest_line(body: bytes, signature_b64: str) -> bytes:
    return b'{"digest":%s,"signature":"%s"}' % (body, signature_b64.encode("ascii"))


def iso_time(epoch: float, *, millis: bool = False) -> str:
    """``2025-01-01T12:00:00Z`` (CloudTrail's eventTime); with ``millis`` three decimals."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    if millis:
        text += f".{int(epoch * 1000) % 1000:03d}"
    return text + "Z"


@dataclass(frozen=True, slots=True)
class DigestState:
    """What the chain head remembers about the last digest."""

    number: int  # 0: none yet
    last_seq: int
    at: float
    hash: str  # hex SHA-256 of the last digest record (GENESIS_HEX when none)


@dataclass(frozen=True, slots=True)
class SignedDigest:
    number: int
    body: bytes  # canonical JSON of the statement
    signature: bytes

    @property
    def record_hash(self) -> str:
        """What the next digest's ``previousDigestHash`` must be."""
        return digest_record_hash(self.body, self.signature)

    @property
    def signature_b64(self) -> str:
        return base64.b64encode(self.signature).decode("ascii")


def digest_record_hash(body: bytes, signature: bytes) -> str:
    return hashlib.sha256(body + signature).hexdigest()


def digest_statement(
    *,
    chain: str,
    previous: DigestState,
    last_seq: int,
    last_hash: bytes,
    now: float,
    key_id: str,
) -> dict[str, Any]:
    return {
        "digestVersion": DIGEST_VERSION,
        "chain": chain,
        "number": previous.number + 1,
        "digestTime": iso_time(now, millis=True),
        "firstSeq": previous.last_seq + 1,
        "lastSeq": last_seq,
        "lastHash": last_hash.hex(),
        "previousDigestHash": previous.hash,
        "signingKeyId": key_id,
        "signatureAlgorithm": "Ed25519",
    }


def digest_due(state: DigestState, head_seq: int, now: float, interval: float) -> bool:
    """A digest is written when events are not yet covered and the interval has passed."""
    return head_seq > state.last_seq and now - state.at >= interval
