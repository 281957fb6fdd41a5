"""Exceptions raised by :mod:`openkms.crypto`.

Messages are deliberately uninformative: a caller must never learn *why* a ciphertext was rejected
(wrong tag, bad header, truncation), because that distinction is an oracle.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by :mod:`openkms.crypto`."""


class InvalidCiphertextError(CryptoError):
    """A ciphertext blob could not be parsed or failed authentication (reason intentionally hidden)."""


class UnwrapError(CryptoError):
    """A wrapped value could not be unwrapped: wrong key, wrong AAD, corrupted or unknown format."""


class InvalidSignatureError(CryptoError):
    """A signature did not verify (malformed, wrong key, wrong message: reason intentionally hidden)."""


class InvalidMacError(CryptoError):
    """A MAC did not verify."""


class InvalidPublicKeyError(CryptoError):
    """A peer public key could not be used: bad encoding, wrong key type or curve, or an invalid point."""
