"""Generic authenticated wrapping and small primitives for the key hierarchy.

Wrapped format v1::

    0x01 || iv(12) || AES-256-GCM(key, iv, plaintext, aad)   (ciphertext || 16-byte tag)

Used for key material under the root key (EKTs), for the root key under a root of trust, and for
stored secrets.  The caller chooses ``aad`` so that a wrapped value is bound to where it belongs
(its owner, key id, purpose); swapping wrapped values between records then fails to unwrap.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from openkms.crypto.errors import UnwrapError

WRAP_VERSION = 0x01
KEY_LEN = 32
_IV_LEN = 12
_TAG_LEN = 16
_VERSION_BYTE = bytes((WRAP_VERSION,))
_SUBKEY_INFO_PREFIX = b"openkms/"


def wrap(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under the 32-byte ``key``, binding ``aad``.

    A random 96-bit IV is used per call; keys used here wrap few values (well below the 2**32
    random-IV limit of GCM).  Raises ``ValueError`` if ``key`` is not 32 bytes.
    """
    if len(key) != KEY_LEN:
        raise ValueError("wrapping key must be 32 bytes")
    iv = os.urandom(_IV_LEN)
    return b"".join((_VERSION_BYTE, iv, AESGCM(key).encrypt(iv, plaintext, aad)))


def unwrap(key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Reverse :func:`wrap`.  Raises :class:`UnwrapError` on any failure (reason not disclosed)."""
    if len(key) != KEY_LEN or len(wrapped) < 1 + _IV_LEN + _TAG_LEN or wrapped[0] != WRAP_VERSION:
        raise UnwrapError("cannot unwrap")
    view = memoryview(wrapped)
    try:
        return AESGCM(key).decrypt(view[1 : 1 + _IV_LEN], view[1 + _IV_LEN :], aad)
    except InvalidTag:
        raise UnwrapError("cannot unwrap") from None


def derive_subkey(root_key: bytes, purpose: bytes) -> bytes:
    """Derive a 32-byte sub-key: HKDF-SHA256(root_key, salt=None, info=b"openkms/" + purpose).

    Distinct purposes give independent keys, so one root key can serve several roles without a
    key being used for two of them.
    """
    if len(root_key) != KEY_LEN:
        raise ValueError("root key must be 32 bytes")
    hkdf = HKDF(algorithm=SHA256(), length=KEY_LEN, salt=None, info=_SUBKEY_INFO_PREFIX + purpose)
    return hkdf.derive(root_key)


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the operating system's CSPRNG."""
    if n < 0:
        raise ValueError("n must be non-negative")
    return os.urandom(n)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """Return HMAC-SHA256(key, data) (32 bytes)."""
    return hmac.digest(key, data, "sha256")


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time independent of where they differ."""
    return hmac.compare_digest(a, b)
