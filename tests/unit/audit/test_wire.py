"""The frames between workers and the node committer: round trips, split reads, malformed input."""

from __future__ import annotations

import pytest

from openkms.audit.sink import PendingEvent
from openkms.audit.wire import ACK, STATS, FrameReader, WireError, encode_ack, encode_batch, encode_stats

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def events() -> list[PendingEvent]:
    return [
        PendingEvent(b'{"eventName":"Encrypt"}', 1700000000.25, (ARN,)),
        PendingEvent(b'{"eventName":"ListKeys","userAgent":"\xc3\xa9"}', 1700000001.5, ()),
        PendingEvent(b"{}", 0.0, (ARN, ARN.replace("1234abcd", "0000abcd"))),
    ]


def test_batches_round_trip_even_one_byte_at_a_time() -> None:
    frames = encode_batch(7, events()) + encode_batch(8, []) + encode_batch(9, events()[:1])
    reader = FrameReader()
    seen = []
    for i in range(len(frames)):
        reader.feed(frames[i : i + 1])
        seen.extend(reader.batches())
    assert [batch_id for batch_id, _ in seen] == [7, 8, 9]
    assert seen[0][1] == events() and seen[1][1] == [] and seen[2][1] == events()[:1]


def test_replies_round_trip() -> None:
    reader = FrameReader()
    reader.feed(encode_ack(3, True) + encode_stats({"batches": 2}) + encode_ack(2**40, False)[:5])
    assert list(reader.replies()) == [(ACK, (3, True)), (STATS, {"batches": 2})]
    reader.feed(encode_ack(2**40, False)[5:])
    assert list(reader.replies()) == [(ACK, (2**40, False))]


def _longer(frame: bytes) -> bytes:
    length = int.from_bytes(frame[1:5], "big") + 1
    return frame[:1] + length.to_bytes(4, "big") + frame[5:] + b"\0"


@pytest.mark.parametrize(
    "frame",
    [
        b"X" + b"\0" * 20,  # unknown type
        _longer(encode_batch(1, events())),  # the payload has a byte no event accounts for
        b"B"
        + (12).to_bytes(4, "big")
        + (1).to_bytes(8, "big")
        + (5).to_bytes(4, "big"),  # 5 events, none there
    ],
)
def test_malformed_batches_are_refused(frame: bytes) -> None:
    reader = FrameReader()
    reader.feed(frame)
    with pytest.raises(WireError):
        list(reader.batches())


def test_a_worker_cannot_send_acks() -> None:
    reader = FrameReader()
    reader.feed(encode_ack(1, True))
    with pytest.raises(WireError):
        list(reader.batches())
