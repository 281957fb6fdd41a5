"""Imported key material (BYOK): wrapping key pairs, unwrapping, import tokens, material ids.

* Wrapping key: a fresh key pair per GetParametersForImport call: RSA_2048/3072/4096 (e = 65537), or SM2
  (China Regions; the public key as the SM2 SubjectPublicKeyInfo of :mod:`openkms.crypto.sm2`).
* Unwrapping (AWS "Encrypt key material"):
  ``RSAES_OAEP_SHA_1/256`` -- the material itself, RSA-OAEP with the same hash for MGF1, empty label;
  ``RSA_AES_KEY_WRAP_SHA_1/256`` -- RSA-OAEP(256-bit ephemeral AES key) followed by AES key wrap with
  padding (RFC 5649) of the material; the RSA part is exactly the modulus length;
  ``SM2PKE`` -- the material itself, SM2 public-key encryption as the SM2PKE Encrypt uses it (GM/T 0009
  DER C1C3C2, what ``openssl pkeyutl -encrypt`` writes; raw ``04 || C1 || C3 || C2`` too).
* Import token: ``0x01 || AES-256-GCM`` (via :func:`openkms.crypto.wrap.wrap`) of
  ``len(header) (2 bytes) || header JSON || wrapping private key PKCS#8``, sealed under a key the caller
  derives from the root key; the caller binds account and key id in the AAD. Stateless: any node with
  the root key can open it.
* Material id: HMAC-SHA256 over the key's identity and the material (kms-semantics.md section 5.3), so
  re-importing the same bytes yields the same id -- which is how "same material" is checked.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from openkms.crypto import sm2
from openkms.crypto.errors import InvalidCiphertextError, UnwrapError

WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
SM2_WRAPPING = "SM2PKE"  # the one algorithm for the SM2 wrapping key spec
# Largest material SM2PKE unwraps: an RSA_4096 PKCS#8 key is about 2.4 KB; SM2PKE itself has no limit.
SM2_MAX_MATERIAL = 4096
_OAEP_HASH: dict[str, type[hashes.SHA1 | hashes.SHA256]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
    "RSA_AES_KEY_WRAP_SHA_1": hashes.SHA1,
    "RSA_AES_KEY_WRAP_SHA_256": hashes.SHA256,
}
WRAPPING_ALGORITHMS = frozenset(_OAEP_HASH)
_AES_KEY_LEN = 32
_TOKEN_VERSION = 1

_DER = serialization.Encoding.DER
_PKCS8 = serialization.PrivateFormat.PKCS8
_CLEAR = serialization.NoEncryption()


def generate_wrapping_key(spec: str) -> tuple[bytes, bytes]:
    """``(PKCS#8 DER private key, DER SubjectPublicKeyInfo)`` of a fresh wrapping key (RSA: slow, seconds)."""
    if spec == "SM2":
        secret = sm2.generate_private()
        return sm2.pkcs8_der(secret), sm2.spki_der(sm2.public_point(secret))
    key = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_BITS[spec])
    public = key.public_key().public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.private_bytes(_DER, _PKCS8, _CLEAR), public


def oaep_max_plaintext(wrapping_spec: str, algorithm: str) -> int:
    """Largest material ``RSAES_OAEP_*`` can carry with this wrapping key (``k - 2*hLen - 2``)."""
    return WRAPPING_KEY_BITS[wrapping_spec] // 8 - 2 * _OAEP_HASH[algorithm].digest_size - 2


def unwrap_material(algorithm: str, wrapping_private_pkcs8: bytes, encrypted: bytes) -> bytes:
    """Recover imported material; :class:`InvalidCiphertextError` on any failure, without saying why."""
    if algorithm == SM2_WRAPPING:
        if len(encrypted) > SM2_MAX_MATERIAL + 256:  # C1, C3 and DER framing take under 256 bytes
            raise InvalidCiphertextError()
        return sm2.decrypt(sm2.parse_pkcs8(wrapping_private_pkcs8), encrypted)
    key = serialization.load_der_private_key(wrapping_private_pkcs8, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    h = _OAEP_HASH[algorithm]()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    k = key.key_size // 8
    try:
        if algorithm.startswith("RSAES_OAEP"):
            if len(encrypted) != k:
                raise InvalidCiphertextError()
            return key.decrypt(encrypted, oaep)
        if len(encrypted) <= k:
            raise InvalidCiphertextError()
        aes_key = key.decrypt(encrypted[:k], oaep)
        if len(aes_key) != _AES_KEY_LEN:
            raise InvalidCiphertextError()
        return keywrap.aes_key_unwrap_with_padding(aes_key, encrypted[k:])
    except (ValueError, keywrap.InvalidUnwrap):
        raise InvalidCiphertextError() from None


# --- import tokens --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, repr=False)
class ImportToken:
    account: str
    region: str
    key_id: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    expires_at: float
    wrapping_private_pkcs8: bytes

    def __repr__(self) -> str:  # never show the private key
        return f"ImportToken({self.key_id}, {self.wrapping_algorithm}, {self.wrapping_key_spec})"


def encode_token(token: ImportToken) -> bytes:
    """The payload of an import token, sealed by the keyring (``Keyring.seal_token``): never handed out
    in this form, it holds the wrapping private key."""
    header = json.dumps(
        {
            "v": _TOKEN_VERSION,
            "account": token.account,
            "region": token.region,
            "key_id": token.key_id,
            "alg": token.wrapping_algorithm,
            "spec": token.wrapping_key_spec,
            "exp": token.expires_at,
        },
        separators=(",", ":"),
    ).encode()
    return len(header).to_bytes(2, "big") + header + token.wrapping_private_pkcs8


def decode_token(body: bytes) -> ImportToken:
    """Reverse :func:`encode_token`; raise :class:`UnwrapError` for anything else."""
    try:
        n = int.from_bytes(body[:2], "big")
        h = json.loads(body[2 : 2 + n])
        if h["v"] != _TOKEN_VERSION:
            raise UnwrapError("cannot unwrap")
        return ImportToken(
            str(h["account"]),
            str(h["region"]),
            str(h["key_id"]),
            str(h["alg"]),
            str(h["spec"]),
            float(h["exp"]),
            body[2 + n :],
        )
    except (ValueError, KeyError, TypeError):
        raise UnwrapError("cannot unwrap") from None


# --- material --------------------------------------------------------------------------------------------
def material_id(id_key: bytes, account: str, key_id: str, material: bytes) -> str:
    """64 lowercase hex: HMAC-SHA256(id_key, "kmid-v1" || len-prefixed account, key id || material)."""
    parts = [b"kmid-v1"]
    for field in (account, key_id):
        raw = field.encode()
        parts += [len(raw).to_bytes(4, "big"), raw]
    parts.append(material)
    return hmac.digest(id_key, b"".join(parts), "sha256").hex()


_CURVES = {
    "ECC_NIST_P256": "secp256r1",
    "ECC_NIST_P384": "secp384r1",
    "ECC_NIST_P521": "secp521r1",
    "ECC_SECG_P256K1": "secp256k1",
}
_RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}


def canonical_private_key(spec: str, der: bytes) -> bytes | None:
    """The imported PKCS#8 DER private key re-encoded canonically, or ``None`` if it is not a private key of
    ``spec`` (RSA modulus size, EC curve). For ``SM2`` the canonical form is what SM2 keys store: the
    32-byte private scalar (:mod:`openkms.crypto.asymmetric`)."""
    if spec == "SM2":
        try:
            return sm2.parse_pkcs8(der)
        except ValueError:
            return None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if spec in _RSA_BITS:
        ok = isinstance(key, rsa.RSAPrivateKey) and key.key_size == _RSA_BITS[spec]
    else:
        ok = isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == _CURVES.get(spec)
    if not ok:
        return None
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key.private_bytes(_DER, _PKCS8, _CLEAR)
