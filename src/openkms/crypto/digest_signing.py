"""Ed25519 signatures over audit digests (the audit log's tamper evidence, like CloudTrail's digest files).

The private key is a 32-byte seed generated here and stored only wrapped by the root key (the caller
does the wrapping); the public key is 32 raw bytes, exported as a PEM SubjectPublicKeyInfo so anyone can
verify digests without access to the key hierarchy.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openkms.crypto.errors import CryptoError

SEED_LEN = 32
ALGORITHM = "Ed25519"


class DigestSignatureError(CryptoError):
    """A digest signature did not verify, or a public key could not be read (reason not detailed)."""


def generate_seed() -> bytes:
    return os.urandom(SEED_LEN)


def public_key(seed: bytes) -> bytes:
    """The raw 32-byte public key of ``seed``."""
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def key_id(public_raw: bytes) -> str:
    """A stable name for a public key: hex SHA-256 of its raw bytes, first 32 characters."""
    return hashlib.sha256(public_raw).hexdigest()[:32]


class DigestSigner:
    """Holds one unwrapped signing key in memory (never logged, never serialised)."""

    __slots__ = ("_key", "key_id", "public_raw")

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_raw = self._key.public_key().public_bytes_raw()
        self.key_id = key_id(self.public_raw)

    def __repr__(self) -> str:
        return f"DigestSigner(key_id={self.key_id!r})"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def verify(public_raw: bytes, signature: bytes, message: bytes) -> None:
    """Raise :class:`DigestSignatureError` unless ``signature`` is valid for ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise DigestSignatureError("digest signature does not verify") from exc


def public_key_pem(public_raw: bytes) -> str:
    key = Ed25519PublicKey.from_public_bytes(public_raw)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key_pem(pem: bytes) -> bytes:
    """PEM SubjectPublicKeyInfo of an Ed25519 key -> raw 32 bytes."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise DigestSignatureError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise DigestSignatureError("not an Ed25519 public key")
    return key.public_bytes_raw()
