"""The shamir root of trust: the RootOfTrust contract (the checks of the shared conformance suite), the
share format, and the unseal state machine.

The shared provider conformance suite is written on another branch; until it is merged these are the same
contract checks for this provider (the lead adds ``shamir`` to that suite's parameters at merge).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import pickle
import threading

import pytest

from openkms.rootoftrust import RootOfTrust, RootOfTrustError
from openkms.rootoftrust.file import FileRootOfTrust
from openkms.rootoftrust.shamir import (
    SHARE_PREFIX,
    ShamirParams,
    ShamirRootOfTrust,
    Share,
    ShareError,
    parse_split,
)
from openkms.rootoftrust.unseal import Unsealer, UnsealRejected

ROOT_KEY = bytes(range(32))


def _unsealed(shares: int = 5, threshold: int = 3) -> tuple[ShamirRootOfTrust, list[str]]:
    return ShamirRootOfTrust.create(shares, threshold)


# --- RootOfTrust contract ------------------------------------------------------------------------------


def test_round_trip_and_protocol() -> None:
    root, shares = _unsealed()
    assert isinstance(root, RootOfTrust)
    assert root.name == "shamir"
    for key in (ROOT_KEY, bytes(32), b"\xff" * 32):
        assert root.unwrap_root_key(root.wrap_root_key(key)) == key
    health = root.health()
    assert health["name"] == "shamir" and health["ok"] is True and health["sealed"] is False
    assert len(shares) == 5


def test_wrap_is_randomised() -> None:
    root, _ = _unsealed()
    a, b = root.wrap_root_key(ROOT_KEY), root.wrap_root_key(ROOT_KEY)
    assert a != b
    assert root.unwrap_root_key(a) == root.unwrap_root_key(b) == ROOT_KEY


def test_wrong_length_root_key_is_refused() -> None:
    root, _ = _unsealed()
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            root.wrap_root_key(bad)


def test_every_altered_bit_is_detected() -> None:
    root, _ = _unsealed()
    wrapped = root.wrap_root_key(ROOT_KEY)
    for i in range(len(wrapped) * 8):
        altered = bytearray(wrapped)
        altered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(RootOfTrustError):
            root.unwrap_root_key(bytes(altered))
    with pytest.raises(RootOfTrustError):
        root.unwrap_root_key(wrapped[:-1])
    with pytest.raises(RootOfTrustError):
        root.unwrap_root_key(b"")


def test_values_of_another_root_of_trust_do_not_unwrap() -> None:
    root, _ = _unsealed()
    other, _ = _unsealed()
    with pytest.raises(RootOfTrustError):
        root.unwrap_root_key(other.wrap_root_key(ROOT_KEY))
    file_root = FileRootOfTrust(bytes(32))
    with pytest.raises(RootOfTrustError):
        root.unwrap_root_key(file_root.wrap_root_key(ROOT_KEY))
    with pytest.raises(RootOfTrustError):
        file_root.unwrap_root_key(root.wrap_root_key(ROOT_KEY))
    # same cluster header, different unseal key: the GCM tag is the verification value
    forged = ShamirRootOfTrust(bytes(32), root.params)
    with pytest.raises(RootOfTrustError):
        forged.unwrap_root_key(root.wrap_root_key(ROOT_KEY))


def test_repr_and_pickle_reveal_nothing() -> None:
    root, shares = _unsealed()
    text = repr(root)
    assert root.params.fingerprint in text
    for share in shares:
        assert share not in text
    with pytest.raises(TypeError):
        pickle.dumps(root)
    unsealer = Unsealer(lambda: [root.wrap_root_key(ROOT_KEY)])
    unsealer.submit(shares[0])
    assert shares[0] not in repr(unsealer)
    with pytest.raises(TypeError):
        pickle.dumps(unsealer)
    assert "value" not in repr(Share.decode(shares[0]))


def test_thread_safe_wrapping() -> None:
    root, _ = _unsealed()
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                assert root.unwrap_root_key(root.wrap_root_key(ROOT_KEY)) == ROOT_KEY
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# --- shares --------------------------------------------------------------------------------------------


def test_share_text_round_trip_and_tolerance() -> None:
    _, shares = _unsealed(4, 2)
    for i, text in enumerate(shares, start=1):
        assert text.startswith(SHARE_PREFIX)
        assert len(text) < 100 and text == text.strip() and " " not in text
        share = Share.decode(text)
        assert share.index == i and share.threshold == 2 and len(share.value) == 32
        assert share.encode() == text
        # copy-paste damage that is harmless: case, surrounding and inner whitespace
        spaced = "  " + text[:30] + " \n" + text[30:].upper() + "\n"
        assert Share.decode(spaced) == share


def test_malformed_shares_are_rejected() -> None:
    _, shares = _unsealed()
    text = shares[0]
    body = text[len(SHARE_PREFIX) :]
    flipped = body[:10] + ("a" if body[10] != "a" else "b") + body[11:]
    cases = {
        "": "not an openkms share",
        "hello": "not an openkms share",
        "okms-share-2-" + body: "not an openkms share",
        SHARE_PREFIX + flipped: "checksum",
        text[:-3]: "base32|wrong length",  # truncated
        text + "aaaaaaaa": "wrong length",
        SHARE_PREFIX + "!!!!" + body[4:]: "base32",
    }
    for bad, reason in cases.items():
        with pytest.raises(ShareError, match=reason):
            Share.decode(bad)


def _reencode(share: Share, **changes: object) -> str:
    """The share with some fields replaced and a valid checksum (a well-formed but different share)."""
    return dataclasses.replace(share, **changes).encode()  # type: ignore[arg-type]


def test_checksum_is_over_the_whole_share() -> None:
    _, shares = _unsealed()
    payload = base64.b32decode(shares[0][len(SHARE_PREFIX) :].upper() + "======")
    body = payload[:-4]
    assert payload[-4:] == hashlib.sha256(b"okms-share-1" + body).digest()[:4]


def test_parse_split() -> None:
    assert parse_split("5/3") == (5, 3)
    assert parse_split("16/16") == (16, 16)
    assert parse_split("2/2") == (2, 2)
    for bad in ("5", "3/5", "1/1", "5/1", "17/3", "a/b", "5/3/1", ""):
        with pytest.raises(ValueError):
            parse_split(bad)


# --- unsealing -----------------------------------------------------------------------------------------


def _cluster(
    shares: int = 5, threshold: int = 3, versions: int = 2
) -> tuple[Unsealer, list[str], list[bytes]]:
    root, texts = ShamirRootOfTrust.create(shares, threshold)
    keys = [bytes([v]) * 32 for v in range(1, versions + 1)]
    wrapped = [root.wrap_root_key(k) for k in keys]
    return Unsealer(lambda: wrapped), texts, keys


def test_every_threshold_subset_unseals() -> None:
    for subset in itertools.combinations(range(5), 3):
        unsealer, texts, _ = _cluster()
        statuses = [unsealer.submit(texts[i]) for i in subset]
        assert [(s.sealed, s.progress) for s in statuses] == [(True, 1), (True, 2), (False, 0)]
        root = unsealer.root_of_trust()
        assert root is not None
        assert root.params.threshold == 3


def test_unsealed_root_unwraps_every_version() -> None:
    root, texts = ShamirRootOfTrust.create(3, 2)
    wrapped = [root.wrap_root_key(bytes([v]) * 32) for v in (1, 2, 3)]
    unsealer = Unsealer(lambda: wrapped)
    assert unsealer.status().sealed
    unsealer.submit(texts[2])
    unsealer.submit(texts[0])
    unsealed = unsealer.root_of_trust()
    assert unsealed is not None
    assert [unsealed.unwrap_root_key(w) for w in wrapped] == [bytes([v]) * 32 for v in (1, 2, 3)]
    # further shares change nothing once unsealed
    assert unsealer.submit(texts[1]).sealed is False


def test_duplicate_share_is_rejected_and_progress_kept() -> None:
    unsealer, texts, _ = _cluster()
    unsealer.submit(texts[0])
    with pytest.raises(UnsealRejected, match="already accepted"):
        unsealer.submit(texts[0])
    # a different value under an index already accepted is a duplicate too
    with pytest.raises(UnsealRejected, match="already accepted"):
        unsealer.submit(_reencode(Share.decode(texts[0]), value=bytes(32)))
    assert unsealer.status().progress == 1
    unsealer.submit(texts[1])
    assert unsealer.submit(texts[2]).sealed is False


def test_malformed_share_is_rejected_without_progress() -> None:
    unsealer, texts, _ = _cluster()
    unsealer.submit(texts[0])
    for bad in ("garbage", texts[1][:-2], texts[1][:20] + "zz" + texts[1][22:]):
        with pytest.raises(UnsealRejected):
            unsealer.submit(bad)
    status = unsealer.status()
    assert status.sealed and status.progress == 1 and status.threshold == 3


def test_share_of_another_cluster_is_rejected() -> None:
    unsealer, texts, _ = _cluster()
    _, foreign, _ = _cluster()
    with pytest.raises(UnsealRejected, match="another openkms cluster"):
        unsealer.submit(foreign[0])
    # a share claiming this cluster but another threshold is foreign as well
    with pytest.raises(UnsealRejected, match="another openkms cluster"):
        unsealer.submit(_reencode(Share.decode(texts[0]), threshold=2))
    assert unsealer.status().progress == 0


def test_wrong_share_is_noticed_at_the_threshold_and_resets_progress() -> None:
    unsealer, texts, _ = _cluster()
    wrong = _reencode(Share.decode(texts[2]), value=bytes(32))  # right cluster and format, wrong value
    unsealer.submit(texts[0])
    unsealer.submit(texts[1])
    with pytest.raises(UnsealRejected, match="do not reconstruct") as info:
        unsealer.submit(wrong)
    assert "3" in str(info.value) and "index" not in str(info.value)  # does not say which one was wrong
    status = unsealer.status()
    assert status.sealed and status.progress == 0
    assert unsealer.root_of_trust() is None
    for i in (4, 3, 2):
        unsealer.submit(texts[i])
    assert unsealer.root_of_trust() is not None


def test_seal_and_reset() -> None:
    unsealer, texts, _ = _cluster()
    unsealer.submit(texts[0])
    unsealer.reset()
    assert unsealer.status().progress == 0
    for t in texts[:3]:
        unsealer.submit(t)
    assert unsealer.root_of_trust() is not None
    unsealer.seal()
    assert unsealer.root_of_trust() is None and unsealer.status().sealed
    unsealer.submit(texts[3])
    assert unsealer.status().progress == 1


def test_header_is_public_and_authenticated() -> None:
    root, _ = _unsealed(7, 4)
    wrapped = root.wrap_root_key(ROOT_KEY)
    params = ShamirParams.of_wrapped(wrapped)
    assert params == root.params and params.threshold == 4 and params.shares == 7
    with pytest.raises(RootOfTrustError):
        ShamirParams.of_wrapped(b"OKSH\x01" + bytes(8) + b"\x05\x03")  # threshold > shares
    with pytest.raises(RootOfTrustError):
        ShamirParams.of_wrapped(FileRootOfTrust(bytes(32)).wrap_root_key(ROOT_KEY))
