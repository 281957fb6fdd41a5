"""The audit sink plug point: where committed events go (database table, JSON-lines file).

Every sink keeps its own hash chain (``chain.py``) and its own signed digests, so each one can be verified
on its own with ``openkms audit verify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from openkms.audit.chain import DigestState, SignedDigest, canonical, digest_statement
from openkms.crypto.digest_signing import DigestSigner


@dataclass(slots=True)
class PendingEvent:
    """One event ready to be appended. (Not frozen: built once per request, and a frozen dataclass costs
    several times more to create.)"""

    body: bytes  # canonical JSON of the CloudTrail record (never holds a secret: see events.py)
    time: float  # epoch seconds of the request
    resources: tuple[str, ...]  # key ARNs the event touched, distinct


class AuditWriteError(Exception):
    """A sink could not append a batch; nothing of the batch may be treated as written."""


class AuditSink(Protocol):
    """Contract:

    * ``append`` writes the batch in order after the current chain head and makes it durable (committed
      and fsynced) before returning; concurrent appends from other threads, processes or nodes are
      serialised so the chain stays one sequence. On failure it raises and the batch is not part of the
      chain (a retry appends it again as new events).
    * ``append`` also writes a signed digest when one is due; ``digest_if_due`` does so without events
      (called when the writer is idle).
    * Both are thread-safe.
    """

    name: str

    def append(self, events: Sequence[PendingEvent], now: float) -> None: ...

    def digest_if_due(self, now: float) -> bool: ...

    def close(self) -> None: ...


def sign_digest(
    signer: DigestSigner, *, chain: str, previous: DigestState, last_seq: int, last_hash: bytes, now: float
) -> SignedDigest:
    statement = digest_statement(
        chain=chain, previous=previous, last_seq=last_seq, last_hash=last_hash, now=now, key_id=signer.key_id
    )
    body = canonical(statement)
    return SignedDigest(previous.number + 1, body, signer.sign(body))
