"""Frames between a worker and its node's audit committer (``committer.py``), over a Unix socket pair.

Worker -> committer, one frame per event-loop pass::

    b"B" | u32 payload length | payload
    payload = u64 batch id | u32 event count | event*
    event   = f64 time | u32 body length | u16 resource count | body | (u16 length | ARN)*

Committer -> worker::

    b"A" | u64 batch id | u8 ok            the batch is durable (ok = 1) or failed closed (ok = 0)
    b"S" | u32 length | JSON               the committer's statistics (for /health), now and then

Both ends are processes of one node started by one master (the socket pair is created before the fork),
so the format needs no version and no authentication; a malformed frame is a bug and drops the channel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from openkms.audit.sink import PendingEvent

BATCH, ACK, STATS = b"B", b"A", b"S"
_LENGTH = struct.Struct("!I")
_BATCH_HEAD = struct.Struct("!QI")
_EVENT_HEAD = struct.Struct("!dIH")
_ARN_LENGTH = struct.Struct("!H")
_ACK = struct.Struct("!QB")
MAX_FRAME = 256 * 1024 * 1024  # a sanity bound: a worker's pass never stages anywhere near this


class WireError(Exception):
    """A frame that cannot be parsed: the channel is dropped."""


def encode_batch(batch_id: int, events: Sequence[PendingEvent]) -> bytes:
    parts: list[bytes] = [b"", _BATCH_HEAD.pack(batch_id, len(events))]
    for event in events:
        parts.append(_EVENT_HEAD.pack(event.time, len(event.body), len(event.resources)))
        parts.append(event.body)
        for arn in event.resources:
            raw = arn.encode()
            parts.append(_ARN_LENGTH.pack(len(raw)))
            parts.append(raw)
    payload_length = sum(len(p) for p in parts)
    parts[0] = BATCH + _LENGTH.pack(payload_length)
    return b"".join(parts)


def encode_ack(batch_id: int, ok: bool) -> bytes:
    return ACK + _ACK.pack(batch_id, 1 if ok else 0)


def encode_stats(stats: dict[str, Any]) -> bytes:
    body = orjson.dumps(stats)
    return STATS + _LENGTH.pack(len(body)) + body


def _decode_events(payload: bytes) -> tuple[int, list[PendingEvent]]:
    try:
        return _decode_events_unchecked(payload)
    except (struct.error, UnicodeDecodeError) as exc:
        raise WireError(f"a batch frame cannot be read: {exc}") from exc


def _decode_events_unchecked(payload: bytes) -> tuple[int, list[PendingEvent]]:
    batch_id, count = _BATCH_HEAD.unpack_from(payload, 0)
    offset = _BATCH_HEAD.size
    events: list[PendingEvent] = []
    for _ in range(count):
        when, body_length, arn_count = _EVENT_HEAD.unpack_from(payload, offset)
        offset += _EVENT_HEAD.size
        body = payload[offset : offset + body_length]
        offset += body_length
        arns: list[str] = []
        for _ in range(arn_count):
            (arn_length,) = _ARN_LENGTH.unpack_from(payload, offset)
            offset += _ARN_LENGTH.size
            arns.append(payload[offset : offset + arn_length].decode())
            offset += arn_length
        events.append(PendingEvent(body, when, tuple(arns)))
    if offset != len(payload):  # a length overran the payload (slices stop at its end) or bytes remain
        raise WireError("a batch frame does not add up")
    return batch_id, events


class FrameReader:
    """Incremental parser: ``feed`` bytes as they arrive, iterate the complete frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def batches(self) -> Iterator[tuple[int, list[PendingEvent]]]:
        """Complete batch frames (the committer's side)."""
        for _, payload in self._frames((BATCH,)):
            yield _decode_events(payload)

    def replies(self) -> Iterator[tuple[bytes, Any]]:
        """Complete ack and stats frames (the worker's side): (ACK, (batch id, ok)) or (STATS, dict)."""
        for kind, payload in self._frames((ACK, STATS)):
            if kind == ACK:
                batch_id, ok = _ACK.unpack_from(payload, 0)
                yield ACK, (batch_id, ok == 1)
            else:
                yield STATS, orjson.loads(payload)

    def _frames(self, kinds: tuple[bytes, ...]) -> Iterator[tuple[bytes, bytes]]:
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= 1:
                kind = bytes(buffer[offset : offset + 1])
                if kind not in kinds:
                    raise WireError(f"unexpected frame type {kind!r}")
                if kind == ACK:
                    start, end = offset + 1, offset + 1 + _ACK.size
                else:
                    if len(buffer) - offset < 1 + _LENGTH.size:
                        break
                    (length,) = _LENGTH.unpack_from(buffer, offset + 1)
                    if length > MAX_FRAME:
                        raise WireError("frame too large")
                    start = offset + 1 + _LENGTH.size
                    end = start + length
                if end > len(buffer):
                    break
                offset = end
                yield kind, bytes(buffer[start:end])  # a copy: the buffer is trimmed below
        finally:
            del buffer[:offset]
