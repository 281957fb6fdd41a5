"""Generic wrapping, sub-key derivation and HMAC helpers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from openkms.crypto.errors import CryptoError, UnwrapError
from openkms.crypto.wrap import (
    constant_time_equal,
    derive_subkey,
    hmac_sha256,
    random_bytes,
    unwrap,
    wrap,
)

KEY = bytes(range(32))


def test_round_trip_and_layout() -> None:
    wrapped = wrap(KEY, b"secret material", b"aad")
    assert wrapped[0] == 1
    assert len(wrapped) == 1 + 12 + len(b"secret material") + 16
    assert unwrap(KEY, wrapped, b"aad") == b"secret material"
    assert unwrap(KEY, wrap(KEY, b"", b""), b"") == b""


def test_wrap_is_randomised() -> None:
    assert wrap(KEY, b"x", b"a") != wrap(KEY, b"x", b"a")


def test_wrong_key_or_aad_fails() -> None:
    wrapped = wrap(KEY, b"x", b"aad")
    with pytest.raises(UnwrapError):
        unwrap(bytes(32), wrapped, b"aad")
    with pytest.raises(UnwrapError):
        unwrap(KEY, wrapped, b"aae")
    with pytest.raises(UnwrapError):
        unwrap(KEY, wrapped, b"")


def test_every_bit_flip_and_truncation_fails() -> None:
    wrapped = wrap(KEY, b"0123456789", b"aad")
    for i in range(len(wrapped) * 8):
        tampered = bytearray(wrapped)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(UnwrapError):
            unwrap(KEY, bytes(tampered), b"aad")
    for n in range(len(wrapped)):
        with pytest.raises(UnwrapError):
            unwrap(KEY, wrapped[:n], b"aad")


def test_bad_key_lengths() -> None:
    with pytest.raises(ValueError):
        wrap(bytes(16), b"x", b"")
    with pytest.raises(UnwrapError):
        unwrap(bytes(16), wrap(KEY, b"x", b""), b"")


def test_unwrap_error_is_crypto_error() -> None:
    assert issubclass(UnwrapError, CryptoError)


def test_derive_subkey_matches_hkdf_and_separates_purposes() -> None:
    expected = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"openkms/ekt-wrap").derive(KEY)
    assert derive_subkey(KEY, b"ekt-wrap") == expected
    assert derive_subkey(KEY, b"a") != derive_subkey(KEY, b"b")
    assert derive_subkey(KEY, b"a") != derive_subkey(bytes(32), b"a")
    with pytest.raises(ValueError):
        derive_subkey(bytes(31), b"a")


def test_derive_subkey_independent_hkdf() -> None:
    # RFC 5869 by hand: salt None -> HashLen zero bytes.
    prk = hmac.new(bytes(32), KEY, hashlib.sha256).digest()
    okm = hmac.new(prk, b"openkms/x" + b"\x01", hashlib.sha256).digest()
    assert derive_subkey(KEY, b"x") == okm


def test_random_bytes() -> None:
    assert len(random_bytes(0)) == 0
    assert len(random_bytes(48)) == 48
    assert random_bytes(16) != random_bytes(16)
    with pytest.raises(ValueError):
        random_bytes(-1)


def test_hmac_and_compare() -> None:
    assert hmac_sha256(b"k", b"d") == hmac.new(b"k", b"d", hashlib.sha256).digest()
    assert constant_time_equal(b"abc", b"abc")
    assert not constant_time_equal(b"abc", b"abd")
    assert not constant_time_equal(b"abc", b"ab")
