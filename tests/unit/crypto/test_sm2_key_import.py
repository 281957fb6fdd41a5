"""SM2 in the import path: PKCS#8 parsing of SM2 private keys (sm2.parse_pkcs8), SM2 wrapping key pairs and
SM2PKE unwrapping (key_import), checked against the ``openssl`` command line where it writes the input."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.crypto.test_sm2 import _openssl, _run

from openkms.crypto import key_import, sm2
from openkms.crypto.errors import InvalidCiphertextError

_CURVE_OID = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301


def _der(tag: int, body: bytes) -> bytes:
    return sm2._der(tag, body)


def _pkcs8(ec_private_key_fields: bytes, algorithm: bytes = sm2._ALG_ID, version: bytes = b"\x00") -> bytes:
    inner = _der(0x30, ec_private_key_fields)
    return _der(0x30, _der(0x02, version) + algorithm + _der(0x04, inner))


def _public_bits(secret: bytes) -> bytes:
    x, y = sm2.public_point(secret)
    return _der(0xA1, _der(0x03, b"\x00\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")))


def test_parse_pkcs8_round_trip_and_openssl(tmp_path: Path) -> None:
    secret = sm2.generate_private()
    assert sm2.parse_pkcs8(sm2.pkcs8_der(secret)) == secret
    openssl = _openssl()
    pem, der = tmp_path / "key.pem", tmp_path / "key.der"
    _run(openssl, "genpkey", "-algorithm", "SM2", "-out", str(pem))
    _run(openssl, "pkcs8", "-topk8", "-nocrypt", "-in", str(pem), "-outform", "DER", "-out", str(der))
    parsed = sm2.parse_pkcs8(der.read_bytes())
    assert sm2.pkcs8_der(parsed) == der.read_bytes()  # openssl's layout is ours byte for byte


def test_parse_pkcs8_optional_fields() -> None:
    secret = bytes(31) + b"\x07"  # a small d, written with and without its leading zeros
    version = _der(0x02, b"\x01")
    with_params = version + _der(0x04, secret) + _der(0xA0, _CURVE_OID) + _public_bits(secret)
    assert sm2.parse_pkcs8(_pkcs8(with_params)) == secret
    without_public = version + _der(0x04, secret)
    assert sm2.parse_pkcs8(_pkcs8(without_public)) == secret
    stripped = version + _der(0x04, b"\x07")
    assert sm2.parse_pkcs8(_pkcs8(stripped)) == secret
    attributes = _pkcs8(without_public)[2:] + _der(0xA0, b"")  # PKCS#8 attributes are ignored
    assert sm2.parse_pkcs8(_der(0x30, attributes)) == secret


def test_parse_pkcs8_refusals() -> None:
    secret = sm2.generate_private()
    good = sm2.pkcs8_der(secret)
    version = _der(0x02, b"\x01")
    other = sm2.generate_private()
    p256_alg = _der(0x30, bytes.fromhex("06072a8648ce3d0201") + bytes.fromhex("06082a8648ce3d030107"))
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    refused = [
        p256,  # another curve
        _pkcs8(version + _der(0x04, secret), algorithm=p256_alg),  # SM2 scalar labelled P-256
        _pkcs8(version + _der(0x04, secret) + _der(0xA0, bytes.fromhex("06082a8648ce3d030107"))),
        _pkcs8(version + _der(0x04, secret) + _public_bits(other)),  # public key of another key
        _pkcs8(version + _der(0x04, bytes(32))),  # d = 0
        _pkcs8(version + _der(0x04, (sm2.N - 1).to_bytes(32, "big"))),  # d = n - 1
        _pkcs8(version + _der(0x04, b"\x01" + secret)),  # 33 bytes
        _pkcs8(_der(0x02, b"\x02") + _der(0x04, secret)),  # ECPrivateKey version
        _pkcs8(version + _der(0x04, secret), version=b"\x01"),  # PKCS#8 v2 is not what AWS documents
        good + b"\x00",
        good[:-1],
        good[8:],
        secret,
        b"",
    ]
    for der in refused:
        with pytest.raises(ValueError):
            sm2.parse_pkcs8(der)


def test_sm2_wrapping_key_and_unwrap() -> None:
    private, public = key_import.generate_wrapping_key("SM2")
    point = sm2.parse_spki(public)
    assert sm2.public_point(sm2.parse_pkcs8(private)) == point
    material = b"\x42" * 2400  # an RSA_4096 PKCS#8 key is about this long
    der_form = sm2.encrypt(point, material, limit=len(material))
    assert key_import.unwrap_material("SM2PKE", private, der_form) == material
    # The raw 04 || C1 || C3 || C2 form is accepted too (what the SM2PKE Decrypt accepts).
    short = sm2.encrypt(point, b"key material")
    c1, c3, c2 = sm2._split_ciphertext(short)
    raw = b"\x04" + c1[0].to_bytes(32, "big") + c1[1].to_bytes(32, "big") + c3 + c2
    assert key_import.unwrap_material("SM2PKE", private, raw) == b"key material"
    # C1 || C2 || C3 (the other order) and other keys' ciphertexts do not unwrap.
    swapped = b"\x04" + c1[0].to_bytes(32, "big") + c1[1].to_bytes(32, "big") + c2 + c3
    other_private, _ = key_import.generate_wrapping_key("SM2")
    for bad in (swapped, raw[:-1], b"\x04" + bytes(200)):
        with pytest.raises(InvalidCiphertextError):
            key_import.unwrap_material("SM2PKE", private, bad)
    with pytest.raises(InvalidCiphertextError):
        key_import.unwrap_material("SM2PKE", other_private, der_form)
    with pytest.raises(ValueError):
        sm2.encrypt(point, b"x" * 1025)  # the Encrypt limit stays the default


def test_canonical_sm2_material() -> None:
    secret = sm2.generate_private()
    assert key_import.canonical_private_key("SM2", sm2.pkcs8_der(secret)) == secret
    assert key_import.canonical_private_key("SM2", b"not a key") is None
    # An SM2 key is not material for a NIST key spec (pyca cannot load the curve).
    assert key_import.canonical_private_key("ECC_NIST_P256", sm2.pkcs8_der(secret)) is None
