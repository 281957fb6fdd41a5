"""Asymmetric key pairs of KMS keys and data key pairs: generation, storage form, loading, RSA-OAEP, ECDH.

Stored private material (kms-semantics.md section 5.2), always wrapped by the keyring:

* RSA, ECC (NIST and secp256k1), Ed25519: PKCS#8 DER;
* ML-DSA: the 32-byte seed ``xi``; ML-KEM: the 64-byte seed ``d || z`` (see :mod:`openkms.crypto.kem`);
* SM2: the 32-byte private scalar (see :mod:`openkms.crypto.sm2`).

:func:`load` turns stored material into a :class:`KeyPair` holding the library objects, so callers can
cache it and never parse PKCS#8 or expand a seed on the hot path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

from openkms.crypto import ed25519ph, kem, sm2
from openkms.crypto.errors import InvalidCiphertextError, InvalidPublicKeyError


class Family(enum.Enum):
    RSA = "RSA"
    EC = "EC"
    ED25519 = "ED25519"
    ML_DSA = "ML_DSA"
    ML_KEM = "ML_KEM"
    SM2 = "SM2"


RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
_MLDSA: dict[str, type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey]] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey,
    "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}
ECDH_SECRET_LEN = {"ECC_NIST_P256": 32, "ECC_NIST_P384": 48, "ECC_NIST_P521": 66, "SM2": 32}


def family(spec: str) -> Family:
    if spec in RSA_BITS:
        return Family.RSA
    if spec in _CURVES:
        return Family.EC
    if spec == "ECC_NIST_EDWARDS25519":
        return Family.ED25519
    if spec in _MLDSA:
        return Family.ML_DSA
    if spec in kem.CIPHERTEXT_LEN:
        return Family.ML_KEM
    if spec == "SM2":
        return Family.SM2
    raise ValueError(f"not an asymmetric key spec: {spec}")


PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
    | kem.MlKemKey
    | sm2.Sm2Key
)
# ML-KEM and SM2 have no separate public object: the MlKemKey / Sm2Key holds the public half.
PublicKey: TypeAlias = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
    | None
)

_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_PKCS8 = serialization.PrivateFormat.PKCS8
_CLEAR = serialization.NoEncryption()


@dataclass(frozen=True, slots=True, repr=False)
class KeyPair:
    """A loaded private key with its public half and DER SubjectPublicKeyInfo (never repr'd)."""

    spec: str
    family: Family
    private: PrivateKey
    public: PublicKey
    public_der: bytes
    ed25519ph_secret: bytes = b""  # libsodium form of an Ed25519 key, for ED25519_PH_SHA_512

    def __repr__(self) -> str:
        return f"KeyPair({self.spec})"


def _generate_object(spec: str) -> PrivateKey:
    fam = family(spec)
    if fam is Family.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec])
    if fam is Family.EC:
        return ec.generate_private_key(_CURVES[spec]())
    if fam is Family.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if fam is Family.ML_DSA:
        return _MLDSA[spec].generate()
    raise ValueError(spec)


def generate_material(spec: str) -> bytes:
    """New private material for a KMS key of ``spec`` in its stored form (may take a second for RSA)."""
    if family(spec) is Family.ML_KEM:
        return kem.generate_seed()
    if family(spec) is Family.SM2:
        return sm2.generate_private()
    key = _generate_object(spec)
    if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey):
        return key.private_bytes_raw()
    assert not isinstance(key, kem.MlKemKey | sm2.Sm2Key)
    return key.private_bytes(_DER, _PKCS8, _CLEAR)


def load(spec: str, material: bytes) -> KeyPair:
    """Build a :class:`KeyPair` from stored material. Raises ``ValueError`` if it does not match ``spec``."""
    fam = family(spec)
    if fam is Family.ML_KEM:
        kem_key = kem.MlKemKey(spec, material)
        return KeyPair(spec, fam, kem_key, None, kem_key.public_der)
    if fam is Family.SM2:
        sm2_key = sm2.Sm2Key(material)
        return KeyPair(spec, fam, sm2_key, None, sm2_key.public_der)
    if fam is Family.ML_DSA:
        dsa = _MLDSA[spec].from_seed_bytes(material)
        return KeyPair(spec, fam, dsa, dsa.public_key(), dsa.public_key().public_bytes(_DER, _SPKI))
    try:
        key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("stored material is not a PKCS#8 private key") from exc
    public_der = key.public_key().public_bytes(_DER, _SPKI)
    if fam is Family.RSA and isinstance(key, rsa.RSAPrivateKey) and key.key_size == RSA_BITS[spec]:
        return KeyPair(spec, fam, key, key.public_key(), public_der)
    if (
        fam is Family.EC
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, _CURVES[spec])
    ):
        return KeyPair(spec, fam, key, key.public_key(), public_der)
    if fam is Family.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        secret = ed25519ph.signing_secret(key.private_bytes_raw())
        return KeyPair(spec, fam, key, key.public_key(), public_der, secret)
    raise ValueError("stored material does not match its key spec")


def generate_data_key_pair(spec: str) -> tuple[bytes, bytes]:
    """A fresh key pair for GenerateDataKeyPair: ``(PKCS#8 DER private key, DER SubjectPublicKeyInfo)``."""
    if family(spec) is Family.ML_KEM:
        seed = kem.generate_seed()
        return kem.pkcs8_from_seed(spec, seed), kem.MlKemKey(spec, seed).public_der
    if family(spec) is Family.SM2:
        secret = sm2.generate_private()
        return sm2.pkcs8_der(secret), sm2.Sm2Key(secret).public_der
    key = _generate_object(spec)
    assert not isinstance(key, kem.MlKemKey | sm2.Sm2Key)
    return key.private_bytes(_DER, _PKCS8, _CLEAR), key.public_key().public_bytes(_DER, _SPKI)


# --- RSA-OAEP and SM2PKE --------------------------------------------------------------------------------
class EncryptionAlgorithm(enum.Enum):
    RSAES_OAEP_SHA_1 = "RSAES_OAEP_SHA_1"
    RSAES_OAEP_SHA_256 = "RSAES_OAEP_SHA_256"
    SM2PKE = "SM2PKE"


_OAEP_HASH: dict[EncryptionAlgorithm, type[hashes.SHA1 | hashes.SHA256]] = {
    EncryptionAlgorithm.RSAES_OAEP_SHA_1: hashes.SHA1,
    EncryptionAlgorithm.RSAES_OAEP_SHA_256: hashes.SHA256,
}


def _oaep(algorithm: EncryptionAlgorithm) -> padding.OAEP:
    # Same hash for MGF1 and the label hash, empty label: what AWS KMS and every OAEP client use.
    h = _OAEP_HASH[algorithm]()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def oaep_max_plaintext(spec: str, algorithm: EncryptionAlgorithm) -> int:
    """``k - 2*hLen - 2`` (RFC 8017 section 7.1.1): 214/190 bytes for RSA_2048, and so on; SM2PKE 1024."""
    if algorithm is EncryptionAlgorithm.SM2PKE:
        return sm2.MAX_PLAINTEXT
    return RSA_BITS[spec] // 8 - 2 * _OAEP_HASH[algorithm].digest_size - 2


def oaep_encrypt(pair: KeyPair, algorithm: EncryptionAlgorithm, plaintext: bytes) -> bytes:
    """RSAES-OAEP, or SM2PKE for an SM2 key (the algorithm fits the key: the service checked)."""
    if isinstance(pair.private, sm2.Sm2Key):
        return sm2.encrypt(pair.private.point, plaintext)
    assert isinstance(pair.public, rsa.RSAPublicKey)
    return pair.public.encrypt(plaintext, _oaep(algorithm))


def oaep_decrypt(pair: KeyPair, algorithm: EncryptionAlgorithm, ciphertext: bytes) -> bytes:
    """Raise :class:`InvalidCiphertextError` on any failure (length, padding), without saying which."""
    if isinstance(pair.private, sm2.Sm2Key):
        return sm2.decrypt(pair.private.secret, ciphertext)
    assert isinstance(pair.private, rsa.RSAPrivateKey)
    if len(ciphertext) != RSA_BITS[pair.spec] // 8:
        raise InvalidCiphertextError()
    try:
        return pair.private.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertextError() from None


# --- ECDH ------------------------------------------------------------------------------------------------
def derive_shared_secret(pair: KeyPair, peer_spki_der: bytes) -> bytes:
    """Raw ECDH (the x-coordinate, field-size bytes; no KDF) with a peer DER SubjectPublicKeyInfo.

    Raises :class:`InvalidPublicKeyError` if the peer key does not parse, is not an EC key on the same
    curve, or is not a valid point (pyca checks the point is on the curve when loading).
    """
    if isinstance(pair.private, sm2.Sm2Key):
        return sm2.derive_shared_secret(pair.private.secret, peer_spki_der)
    assert isinstance(pair.private, ec.EllipticCurvePrivateKey)
    try:
        peer = serialization.load_der_public_key(peer_spki_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidPublicKeyError() from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != pair.private.curve.name:
        raise InvalidPublicKeyError()
    try:
        return pair.private.exchange(ec.ECDH(), peer)
    except ValueError:
        raise InvalidPublicKeyError() from None
