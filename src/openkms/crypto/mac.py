"""HMAC (RFC 2104) for GENERATE_VERIFY_MAC keys (kms-semantics.md section 3.3).

The stdlib one-shot ``hmac.digest`` runs OpenSSL's HMAC in one C call, which is several times faster than
building a ``cryptography`` HMAC object per request and yields the same bytes.
"""

from __future__ import annotations

import enum
import hmac
import os

from openkms.crypto.errors import InvalidMacError


class MacAlgorithm(enum.Enum):
    HMAC_SHA_224 = "HMAC_SHA_224"
    HMAC_SHA_256 = "HMAC_SHA_256"
    HMAC_SHA_384 = "HMAC_SHA_384"
    HMAC_SHA_512 = "HMAC_SHA_512"


_HASH = {
    MacAlgorithm.HMAC_SHA_224: ("sha224", 28),
    MacAlgorithm.HMAC_SHA_256: ("sha256", 32),
    MacAlgorithm.HMAC_SHA_384: ("sha384", 48),
    MacAlgorithm.HMAC_SHA_512: ("sha512", 64),
}

# Generated key lengths per key spec: the hash length (kms-semantics.md section 3.1).
KEY_LENGTH = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}


def generate_key(spec: str) -> bytes:
    """Fresh random HMAC key material for an ``HMAC_*`` key spec."""
    return os.urandom(KEY_LENGTH[spec])


def generate_mac(algorithm: MacAlgorithm, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, _HASH[algorithm][0])


def verify_mac(algorithm: MacAlgorithm, key: bytes, message: bytes, mac: bytes) -> None:
    """Raise :class:`InvalidMacError` unless ``mac`` is the MAC of ``message`` (constant-time compare)."""
    if not hmac.compare_digest(hmac.digest(key, message, _HASH[algorithm][0]), mac):
        raise InvalidMacError()
