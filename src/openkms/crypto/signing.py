"""Sign and Verify for every KMS signing algorithm (kms-semantics.md section 3.3).

* RSASSA-PSS: MGF1 with the same hash, salt length = digest length. RSASSA-PKCS1-v1_5: DigestInfo prefix.
* ECDSA: DER ``Ecdsa-Sig-Value``, no low-S normalisation.
* ``DIGEST`` skips the hash (``Prehashed``); ``RAW`` hashes with the algorithm's hash.
* Ed25519: ED25519_SHA_512 is pure Ed25519 over a RAW message; ED25519_PH_SHA_512 is Ed25519ph over the
  caller's 64-byte digest taken as the message (:mod:`openkms.crypto.ed25519ph`).
* ML-DSA: RAW is pure ML-DSA with an empty context; EXTERNAL_MU signs the caller's 64-byte mu (FIPS 204
  section 6.2). Either verifies the other.
* SM2DSA: RAW signs e = SM3(Z || M) with the default distinguishing ID; DIGEST takes the caller's e (which
  already includes Z). DER-encoded (r, s) (:mod:`openkms.crypto.sm2`).

Which message types an algorithm accepts and the digest lengths are data here; the service turns a
mismatch into AWS's ValidationException. Verification raises, never returns a bool.
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils

from openkms.crypto import ed25519ph, sm2
from openkms.crypto.asymmetric import KeyPair
from openkms.crypto.errors import InvalidSignatureError


class SigningAlgorithm(enum.Enum):
    RSASSA_PSS_SHA_256 = "RSASSA_PSS_SHA_256"
    RSASSA_PSS_SHA_384 = "RSASSA_PSS_SHA_384"
    RSASSA_PSS_SHA_512 = "RSASSA_PSS_SHA_512"
    RSASSA_PKCS1_V1_5_SHA_256 = "RSASSA_PKCS1_V1_5_SHA_256"
    RSASSA_PKCS1_V1_5_SHA_384 = "RSASSA_PKCS1_V1_5_SHA_384"
    RSASSA_PKCS1_V1_5_SHA_512 = "RSASSA_PKCS1_V1_5_SHA_512"
    ECDSA_SHA_256 = "ECDSA_SHA_256"
    ECDSA_SHA_384 = "ECDSA_SHA_384"
    ECDSA_SHA_512 = "ECDSA_SHA_512"
    ED25519_SHA_512 = "ED25519_SHA_512"
    ED25519_PH_SHA_512 = "ED25519_PH_SHA_512"
    ML_DSA_SHAKE_256 = "ML_DSA_SHAKE_256"
    SM2DSA = "SM2DSA"


class MessageType(enum.Enum):
    RAW = "RAW"
    DIGEST = "DIGEST"
    EXTERNAL_MU = "EXTERNAL_MU"


A = SigningAlgorithm
_HASHES: dict[SigningAlgorithm, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    A.RSASSA_PSS_SHA_256: hashes.SHA256,
    A.RSASSA_PSS_SHA_384: hashes.SHA384,
    A.RSASSA_PSS_SHA_512: hashes.SHA512,
    A.RSASSA_PKCS1_V1_5_SHA_256: hashes.SHA256,
    A.RSASSA_PKCS1_V1_5_SHA_384: hashes.SHA384,
    A.RSASSA_PKCS1_V1_5_SHA_512: hashes.SHA512,
    A.ECDSA_SHA_256: hashes.SHA256,
    A.ECDSA_SHA_384: hashes.SHA384,
    A.ECDSA_SHA_512: hashes.SHA512,
}
_PSS = {A.RSASSA_PSS_SHA_256, A.RSASSA_PSS_SHA_384, A.RSASSA_PSS_SHA_512}
_RAW_DIGEST = frozenset({MessageType.RAW, MessageType.DIGEST})

MESSAGE_TYPES: dict[SigningAlgorithm, frozenset[MessageType]] = {
    **{alg: _RAW_DIGEST for alg in _HASHES},
    A.ED25519_SHA_512: frozenset({MessageType.RAW}),
    A.ED25519_PH_SHA_512: frozenset({MessageType.DIGEST}),
    A.ML_DSA_SHAKE_256: frozenset({MessageType.RAW, MessageType.EXTERNAL_MU}),
    A.SM2DSA: _RAW_DIGEST,
}
"""Message types each algorithm accepts (AWS Sign documentation, MessageType member)."""

MU_LENGTH = 64


def digest_length(algorithm: SigningAlgorithm) -> int:
    """Bytes a DIGEST message must have for ``algorithm`` (SHA-512 for Ed25519ph)."""
    if algorithm is A.ED25519_PH_SHA_512:
        return 64
    if algorithm is A.SM2DSA:
        return 32  # an SM3 value
    return _HASHES[algorithm].digest_size


def _build_hash(
    algorithm: SigningAlgorithm, message_type: MessageType
) -> hashes.HashAlgorithm | utils.Prehashed:
    h = _HASHES[algorithm]()
    return utils.Prehashed(h) if message_type is MessageType.DIGEST else h


def _build_padding(algorithm: SigningAlgorithm) -> padding.AsymmetricPadding:
    if algorithm in _PSS:
        h = _HASHES[algorithm]()
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


# Built once: the parameter objects are immutable, and building them per call is measurable next to ECDSA.
_HASH_FOR = {(a, t): _build_hash(a, t) for a in _HASHES for t in _RAW_DIGEST}
_ECDSA_FOR = {key: ec.ECDSA(h) for key, h in _HASH_FOR.items()}
_PADDING_FOR = {a: _build_padding(a) for a in _HASHES}


def _hash_and_prehashed(
    algorithm: SigningAlgorithm, message_type: MessageType
) -> hashes.HashAlgorithm | utils.Prehashed:
    return _HASH_FOR[algorithm, message_type]


def _rsa_padding(algorithm: SigningAlgorithm) -> padding.AsymmetricPadding:
    return _PADDING_FOR[algorithm]


def sign(pair: KeyPair, algorithm: SigningAlgorithm, message: bytes, message_type: MessageType) -> bytes:
    """Sign; the caller has checked that the algorithm fits the key and the message type and length fit
    the algorithm."""
    key = pair.private
    if isinstance(key, sm2.Sm2Key):
        digest = message if message_type is MessageType.DIGEST else sm2.message_digest(key.point, message)
        return sm2.sign_digest(key.secret, digest)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, _ECDSA_FOR[algorithm, message_type])
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, _rsa_padding(algorithm), _hash_and_prehashed(algorithm, message_type))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if algorithm is A.ED25519_PH_SHA_512:
            return ed25519ph.sign(pair.ed25519ph_secret, message)
        return key.sign(message)
    if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey):
        if message_type is MessageType.EXTERNAL_MU:
            return key.sign_mu(message)
        return key.sign(message)
    raise ValueError(f"{pair.spec} keys do not sign")


def verify(
    pair: KeyPair,
    algorithm: SigningAlgorithm,
    message: bytes,
    message_type: MessageType,
    signature: bytes,
) -> None:
    """Raise :class:`InvalidSignatureError` unless ``signature`` is valid (any malformation included)."""
    public = pair.public
    if isinstance(pair.private, sm2.Sm2Key):
        point = pair.private.point
        digest = message if message_type is MessageType.DIGEST else sm2.message_digest(point, message)
        sm2.verify_digest(point, digest, signature)
        return
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, _ECDSA_FOR[algorithm, message_type])
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(
                signature, message, _rsa_padding(algorithm), _hash_and_prehashed(algorithm, message_type)
            )
        elif isinstance(public, ed25519.Ed25519PublicKey):
            if algorithm is A.ED25519_PH_SHA_512:
                ed25519ph.verify(public.public_bytes_raw(), message, signature)
            else:
                public.verify(signature, message)
        elif isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey):
            if message_type is MessageType.EXTERNAL_MU:
                public.verify_mu(signature, message)
            else:
                public.verify(signature, message)
        else:
            raise ValueError(f"{pair.spec} keys do not verify")
    except (InvalidSignature, ValueError):
        raise InvalidSignatureError() from None
