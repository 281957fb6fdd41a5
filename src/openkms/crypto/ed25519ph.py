"""Ed25519ph (RFC 8032 section 5.1 with phflag = 1, empty context), through libsodium (PyNaCl).

pyca/cryptography 50 only offers pure Ed25519. libsodium's multi-part signing API
(``crypto_sign_init/update/final_*``, bound by PyNaCl as ``crypto_sign_ed25519ph_*``) is Ed25519ph:
``PH = SHA-512`` over everything passed to ``update``, then ``dom2(1, "")`` in both hash inputs.
``tests/unit/crypto/test_ed25519ph.py`` checks it against the RFC 8032 section 7.3 vector.

KMS semantics (ED25519_PH_SHA_512): the caller sends a 64-byte SHA-512 digest ``d`` and KMS still applies
the prehash, so the signature is Ed25519ph over the *message* ``d``. That is exactly :func:`sign` here.
"""

from __future__ import annotations

from nacl import bindings
from nacl.exceptions import BadSignatureError, CryptoError

from openkms.crypto.errors import InvalidSignatureError

SEED_LEN = 32
SIGNATURE_LEN = 64


def signing_secret(seed: bytes) -> bytes:
    """Expand a 32-byte Ed25519 seed into libsodium's 64-byte secret key (seed || public key)."""
    if len(seed) != SEED_LEN:
        raise ValueError("an Ed25519 seed is 32 bytes")
    _public, secret = bindings.crypto_sign_seed_keypair(seed)
    return bytes(secret)


def sign(secret: bytes, message: bytes) -> bytes:
    """Ed25519ph signature of ``message`` with a secret from :func:`signing_secret`."""
    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    return bytes(bindings.crypto_sign_ed25519ph_final_create(state, secret))


def verify(public_raw: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`InvalidSignatureError` unless ``signature`` is a valid Ed25519ph signature."""
    if len(signature) != SIGNATURE_LEN or len(public_raw) != 32:
        raise InvalidSignatureError()
    state = bindings.crypto_sign_ed25519ph_state()
    bindings.crypto_sign_ed25519ph_update(state, message)
    try:
        ok = bindings.crypto_sign_ed25519ph_final_verify(state, signature, public_raw)
    except (BadSignatureError, CryptoError):
        raise InvalidSignatureError() from None
    if not ok:
        raise InvalidSignatureError()
