"""Tests of the v1 symmetric ciphertext blob, driven by tests/vectors/blob_v1.json.

The expected blobs are recomputed here by an independent implementation (hand-written SP 800-108
counter-mode KDF on the stdlib ``hmac`` module, hand-written context encoding, ``struct`` header),
so a bug in ``openkms.crypto`` cannot silently agree with itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from openkms.crypto import symmetric
from openkms.crypto.context import encode_encryption_context
from openkms.crypto.errors import InvalidCiphertextError
from openkms.crypto.symmetric import (
    BLOB_OVERHEAD,
    BlobHeader,
    generate_symmetric_material,
    new_material_id,
    open_blob,
    parse_header,
    seal,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "blob_v1.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]

ACCOUNT = "111122223333"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"


# --- independent reference implementation ------------------------------------------------------


def ref_kbkdf_counter(key: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """NIST SP 800-108r1 KDF in counter mode, PRF = HMAC-SHA256, r = 32, [L]_2 as 32 bits."""
    fixed = label + b"\x00" + context + struct.pack(">I", length * 8)
    out = b""
    counter = 1
    while len(out) < length:
        out += hmac.new(key, struct.pack(">I", counter) + fixed, hashlib.sha256).digest()
        counter += 1
    return out[:length]


def ref_encode_context(ec: dict[str, str] | None) -> bytes:
    if ec is None or len(ec) == 0:
        return b""
    pairs = [(k.encode("utf-8"), v.encode("utf-8")) for k, v in ec.items()]
    pairs.sort(key=lambda kv: kv[0])
    body = b"".join(struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v for k, v in pairs)
    return struct.pack(">H", len(pairs)) + body


def ref_seal(case: dict[str, Any]) -> bytes:
    material = bytes.fromhex(case["material"])
    material_id = bytes.fromhex(case["material_id"])
    nonce = bytes.fromhex(case["nonce"])
    iv = bytes.fromhex(case["iv"])
    key_id = case["key_id"].encode("ascii")
    header: bytes = (
        struct.pack(">BB12sB", 1, 1, case["account"].encode("ascii"), len(key_id))
        + key_id
        + material_id
        + nonce
        + iv
    )
    assert len(header) == 75 + len(key_id)
    k = ref_kbkdf_counter(material, b"kms-compat/symmetric/v1", nonce + material_id + key_id, 32)
    aad = header + ref_encode_context(case["encryption_context"])
    return header + AESGCM(k).encrypt(iv, bytes.fromhex(case["plaintext"]), aad)


# --- known-answer vectors ----------------------------------------------------------------------


def test_vector_file_covers_required_cases() -> None:
    sizes = {len(bytes.fromhex(c["plaintext"])) for c in CASES}
    assert {1, 32, 4096} <= sizes
    assert any(c["key_id"].startswith("mrk-") for c in CASES)
    assert len({c["account"] for c in CASES}) > 1
    contexts = [c["encryption_context"] for c in CASES]
    assert None in contexts and {} in contexts
    assert {"ab": "c"} in contexts and {"a": "bc"} in contexts
    assert any(any(not k.isascii() for k in (ec or {})) for ec in contexts)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_matches_independent_implementation(case: dict[str, Any]) -> None:
    assert ref_seal(case).hex() == case["blob"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_matches_implementation(case: dict[str, Any]) -> None:
    encoded = encode_encryption_context(case["encryption_context"])
    assert encoded.hex() == case["encoded_context"]
    blob = symmetric._seal_with(
        bytes.fromhex(case["nonce"]),
        bytes.fromhex(case["iv"]),
        bytes.fromhex(case["material"]),
        case["account"],
        case["key_id"],
        bytes.fromhex(case["material_id"]),
        bytes.fromhex(case["plaintext"]),
        encoded,
    )
    assert blob.hex() == case["blob"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector_opens(case: dict[str, Any]) -> None:
    blob = bytes.fromhex(case["blob"])
    header = parse_header(blob)
    assert header == BlobHeader(case["account"], case["key_id"], bytes.fromhex(case["material_id"]))
    encoded = encode_encryption_context(case["encryption_context"])
    assert open_blob(bytes.fromhex(case["material"]), blob, encoded) == bytes.fromhex(case["plaintext"])
    assert len(blob) == len(bytes.fromhex(case["plaintext"])) + BLOB_OVERHEAD


def test_fast_kdf_equals_cryptography_kbkdfhmac() -> None:
    for case in CASES:
        material = bytes.fromhex(case["material"])
        context = bytes.fromhex(case["nonce"]) + bytes.fromhex(case["material_id"]) + case["key_id"].encode()
        expected = KBKDFHMAC(
            algorithm=SHA256(),
            mode=Mode.CounterMode,
            length=32,
            rlen=4,
            llen=4,
            location=CounterLocation.BeforeFixed,
            label=b"kms-compat/symmetric/v1",
            context=context,
            fixed=None,
        ).derive(material)
        assert ref_kbkdf_counter(material, b"kms-compat/symmetric/v1", context, 32) == expected
        got = symmetric._derive(
            material,
            bytes.fromhex(case["nonce"]),
            bytes.fromhex(case["material_id"]),
            case["key_id"].encode(),
        )
        assert got == expected


def test_collision_pair_blobs_differ_and_do_not_cross_open() -> None:
    by_name = {c["name"]: c for c in CASES}
    a, b = by_name["collision-ab-c"], by_name["collision-a-bc"]
    assert a["blob"] != b["blob"]
    assert a["encoded_context"] != b["encoded_context"]
    material = bytes.fromhex(a["material"])
    blob = seal(material, ACCOUNT, KEY_ID, bytes(32), b"secret", encode_encryption_context({"ab": "c"}))
    with pytest.raises(InvalidCiphertextError):
        open_blob(material, blob, encode_encryption_context({"a": "bc"}))


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("key_id", [KEY_ID, MRK_ID])
@pytest.mark.parametrize("size", [0, 1, 32, 4096])
def test_round_trip(key_id: str, size: int) -> None:
    material, material_id = generate_symmetric_material(), new_material_id()
    ec = encode_encryption_context({"k": "v"})
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    blob = seal(material, ACCOUNT, key_id, material_id, plaintext, ec)
    assert len(blob) == size + BLOB_OVERHEAD
    assert parse_header(blob) == BlobHeader(ACCOUNT, key_id, material_id)
    assert open_blob(material, blob, ec) == plaintext


def test_seal_is_randomised() -> None:
    material, material_id = generate_symmetric_material(), new_material_id()
    a = seal(material, ACCOUNT, KEY_ID, material_id, b"same", b"")
    b = seal(material, ACCOUNT, KEY_ID, material_id, b"same", b"")
    assert a != b
    assert open_blob(material, a, b"") == open_blob(material, b, b"") == b"same"


def test_random_helpers() -> None:
    assert len(generate_symmetric_material()) == 32
    assert len(new_material_id()) == 32
    assert generate_symmetric_material() != generate_symmetric_material()


# --- tampering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_blob() -> tuple[bytes, bytes, bytes]:
    material, material_id = generate_symmetric_material(), new_material_id()
    ec = encode_encryption_context({"a": "b"})
    return material, seal(material, ACCOUNT, KEY_ID, material_id, b"x", ec), ec


def test_every_single_bit_flip_is_rejected(short_blob: tuple[bytes, bytes, bytes]) -> None:
    material, blob, ec = short_blob
    assert open_blob(material, blob, ec) == b"x"
    failures = 0
    for i in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(InvalidCiphertextError) as info:
            open_blob(material, bytes(tampered), ec)
        assert str(info.value) == ""
        failures += 1
    assert failures == len(blob) * 8 == 128 * 8


def test_every_truncation_and_extension_is_rejected(short_blob: tuple[bytes, bytes, bytes]) -> None:
    material, blob, ec = short_blob
    for n in range(len(blob)):
        with pytest.raises(InvalidCiphertextError):
            open_blob(material, blob[:n], ec)
    with pytest.raises(InvalidCiphertextError):
        open_blob(material, blob + b"\x00", ec)


def test_short_blobs_fail_to_parse(short_blob: tuple[bytes, bytes, bytes]) -> None:
    _, blob, _ = short_blob
    # Header (111 bytes with a 36-byte key id) + 16-byte tag is the minimum: plaintext may be empty.
    for n in range(BLOB_OVERHEAD):
        with pytest.raises(InvalidCiphertextError):
            parse_header(blob[:n])
    assert parse_header(blob[:BLOB_OVERHEAD]).key_id == KEY_ID


def test_wrong_context_and_wrong_material_are_rejected(short_blob: tuple[bytes, bytes, bytes]) -> None:
    material, blob, ec = short_blob
    for wrong in (b"", encode_encryption_context({"a": "B"}), encode_encryption_context({"A": "b"})):
        with pytest.raises(InvalidCiphertextError):
            open_blob(material, blob, wrong)
    with pytest.raises(InvalidCiphertextError):
        open_blob(generate_symmetric_material(), blob, ec)
    with pytest.raises(InvalidCiphertextError):
        open_blob(material[:16], blob, ec)


def test_extra_context_pair_is_rejected() -> None:
    material, material_id = generate_symmetric_material(), new_material_id()
    blob = seal(material, ACCOUNT, KEY_ID, material_id, b"x", b"")
    with pytest.raises(InvalidCiphertextError):
        open_blob(material, blob, encode_encryption_context({"a": "b"}))


def _with_header(blob: bytes, offset: int, data: bytes) -> bytes:
    return blob[:offset] + data + blob[offset + len(data) :]


@pytest.mark.parametrize(
    ("offset", "data"),
    [
        (0, b"\x02"),  # version
        (0, b"\x00"),
        (1, b"\x02"),  # type
        (2, b"12345678901a"),  # account not digits
        (2, b"12345678901\xd9"),  # non-ASCII in account
        (2, b" 12345678901"),
        (14, b"\x23"),  # L = 35
        (14, b"\x25"),
        (14, b"\x00"),
        (15, b"1234ABCD"),  # upper-case uuid
        (15, b"1234abcg"),
        (23, b"x"),  # dash replaced
        (15, b"mrk-1234abcd-12ab-34cd-56ef-12345678"),  # mrk- with dashes
        (15, b"MRK-"),
    ],
)
def test_malformed_headers_fail_to_parse(offset: int, data: bytes) -> None:
    material, material_id = generate_symmetric_material(), new_material_id()
    blob = _with_header(seal(material, ACCOUNT, KEY_ID, material_id, b"x", b""), offset, data)
    with pytest.raises(InvalidCiphertextError):
        parse_header(blob)
    with pytest.raises(InvalidCiphertextError):
        open_blob(material, blob, b"")


def test_header_cannot_be_repointed_to_other_key() -> None:
    material, material_id = generate_symmetric_material(), new_material_id()
    blob = seal(material, ACCOUNT, KEY_ID, material_id, b"x", b"")
    other = _with_header(blob, 2, b"999999999999")
    assert parse_header(other).account == "999999999999"
    with pytest.raises(InvalidCiphertextError):
        open_blob(material, other, b"")


# --- argument validation on seal ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "key_id"),
    [
        ("11112222333", KEY_ID),
        ("1111222233334", KEY_ID),
        ("11112222333a", KEY_ID),
        ("١١١١٢٢٢٢٣٣٣٣", KEY_ID),  # Arabic-Indic digits are not ASCII digits
        (ACCOUNT, KEY_ID.upper()),
        (ACCOUNT, "alias/foo"),
        (ACCOUNT, "mrk-1234"),
        (ACCOUNT, "1234abcd-12ab-34cd-56ef-1234567890ab\n"),
        (ACCOUNT, "é" * 36),
    ],
)
def test_seal_rejects_bad_ids(account: str, key_id: str) -> None:
    with pytest.raises(ValueError):
        seal(bytes(32), account, key_id, bytes(32), b"x", b"")


def test_seal_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError):
        seal(bytes(31), ACCOUNT, KEY_ID, bytes(32), b"x", b"")
    with pytest.raises(ValueError):
        seal(bytes(32), ACCOUNT, KEY_ID, bytes(33), b"x", b"")
    with pytest.raises(ValueError):
        symmetric._seal_with(bytes(15), bytes(12), bytes(32), ACCOUNT, KEY_ID, bytes(32), b"x", b"")
    with pytest.raises(ValueError):
        symmetric._seal_with(bytes(16), bytes(11), bytes(32), ACCOUNT, KEY_ID, bytes(32), b"x", b"")
