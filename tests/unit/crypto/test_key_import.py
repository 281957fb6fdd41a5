"""openkms.crypto.key_import: unwrapping for every wrapping algorithm, import token sealing, material ids."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from openkms.crypto import key_import
from openkms.crypto.errors import InvalidCiphertextError, UnwrapError

SEAL_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def wrapping() -> tuple[bytes, rsa.RSAPublicKey]:
    private, public_der = key_import.generate_wrapping_key("RSA_2048")
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    return private, public


def oaep(algorithm: str) -> padding.OAEP:
    h = hashes.SHA256() if algorithm.endswith("256") else hashes.SHA1()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


@pytest.mark.parametrize("algorithm", sorted(key_import.WRAPPING_ALGORITHMS))
def test_unwrap_every_algorithm(wrapping: tuple[bytes, rsa.RSAPublicKey], algorithm: str) -> None:
    private, public = wrapping
    material = os.urandom(32)
    if algorithm.startswith("RSAES"):
        encrypted = public.encrypt(material, oaep(algorithm))
    else:
        aes = os.urandom(32)
        encrypted = public.encrypt(aes, oaep(algorithm)) + keywrap.aes_key_wrap_with_padding(aes, material)
    assert key_import.unwrap_material(algorithm, private, encrypted) == material
    # the same family with the other hash: OAEP decoding fails
    other = algorithm[:-3] + "1" if algorithm.endswith("256") else algorithm[:-1] + "256"
    for bad_algorithm, bad in (
        (algorithm, encrypted[:-1]),
        (algorithm, bytes([encrypted[0] ^ 1]) + encrypted[1:]),
        (other, encrypted),
    ):
        assert bad_algorithm in key_import.WRAPPING_ALGORITHMS
        with pytest.raises(InvalidCiphertextError):
            key_import.unwrap_material(bad_algorithm, private, bad)


def test_token_payload_round_trip_and_garbage() -> None:
    token = key_import.ImportToken(
        "111122223333", "eu-west-1", "k1", "RSAES_OAEP_SHA_256", "RSA_2048", 5.0, b"pk"
    )
    assert key_import.decode_token(key_import.encode_token(token)) == token
    assert "pk" not in repr(token)
    body = key_import.encode_token(token)
    for bad in (b"", b"\x00", body[:10], body.replace(b'"v":1', b'"v":9'), b"\x00\x02{}"):
        with pytest.raises(UnwrapError):
            key_import.decode_token(bad)


def test_material_id_is_deterministic_and_bound() -> None:
    a = key_import.material_id(SEAL_KEY, "111122223333", "k1", b"m" * 32)
    assert a == key_import.material_id(SEAL_KEY, "111122223333", "k1", b"m" * 32)
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != key_import.material_id(SEAL_KEY, "111122223333", "k2", b"m" * 32)
    assert a != key_import.material_id(SEAL_KEY, "111122223333", "k1", b"n" * 32)
    assert a != key_import.material_id(bytes(32), "111122223333", "k1", b"m" * 32)


def test_canonical_private_key_checks_spec() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    der = p256.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert key_import.canonical_private_key("ECC_NIST_P256", der) == der
    assert key_import.canonical_private_key("ECC_NIST_P384", der) is None
    assert key_import.canonical_private_key("RSA_2048", der) is None
    assert key_import.canonical_private_key("ECC_NIST_P256", b"not der") is None
