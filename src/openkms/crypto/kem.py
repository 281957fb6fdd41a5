"""ML-KEM (FIPS 203) keys for ENCAPSULATE_DECAPSULATE: stored as the 64-byte seed ``d || z``.

ML-KEM-768 and ML-KEM-1024 come from pyca/cryptography. pyca 50 has no ML-KEM-512, so that parameter set
uses ``kyber-py`` (pure Python, checked against the FIPS 203 / ACVP vectors by its author and against our
committed vectors in ``tests/vectors/mlkem``). Its ``key_derive`` takes the same ``d || z`` seed as pyca's
``from_seed_bytes`` (tests check that both give the same ML-KEM-768 encapsulation key), so every size is
stored the same way. kyber-py is not constant-time; see docs/compatibility.md.

The DER forms pyca cannot produce for ML-KEM-512 are built here with the same framing pyca uses for the
other sizes: SubjectPublicKeyInfo with the NIST OID, and PKCS#8 holding the seed (``[0]`` IMPLICIT
OCTET STRING, the "seed" choice of the IETF LAMPS ML-KEM key format) -- 86 bytes for every size.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from kyber_py.ml_kem import ML_KEM_512

from openkms.crypto.errors import InvalidCiphertextError

SEED_LEN = 64
SHARED_SECRET_LEN = 32
CIPHERTEXT_LEN = {"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568}

# id-alg-ml-kem-512 = 2.16.840.1.101.3.4.4.1
_OID_512 = bytes.fromhex("0609608648016503040401")
_SPKI_512_PREFIX = bytes.fromhex("30820332300b") + _OID_512 + bytes.fromhex("0382032100")
_PKCS8_512_PREFIX = bytes.fromhex("3054020100300b") + _OID_512 + bytes.fromhex("04428040")

_PYCA: dict[str, type[mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey]] = {
    "ML_KEM_768": mlkem.MLKEM768PrivateKey,
    "ML_KEM_1024": mlkem.MLKEM1024PrivateKey,
}


def generate_seed() -> bytes:
    return os.urandom(SEED_LEN)


class MlKemKey:
    """A loaded ML-KEM decapsulation key (one per KMS key material; cached by the service)."""

    __slots__ = ("_dk", "_ek", "_pyca", "public_der", "spec")

    def __init__(self, spec: str, seed: bytes) -> None:
        if len(seed) != SEED_LEN or spec not in CIPHERTEXT_LEN:
            raise ValueError("not an ML-KEM seed")
        self.spec = spec
        self._pyca: mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | None = None
        self._ek = self._dk = b""
        if spec == "ML_KEM_512":
            self._ek, self._dk = ML_KEM_512.key_derive(seed)
            self.public_der = _SPKI_512_PREFIX + self._ek
        else:
            self._pyca = _PYCA[spec].from_seed_bytes(seed)
            self.public_der = self._pyca.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )

    def __repr__(self) -> str:
        return f"MlKemKey({self.spec})"

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)`` for this key's encapsulation key."""
        if self._pyca is not None:
            return self._pyca.public_key().encapsulate()
        shared, ciphertext = ML_KEM_512.encaps(self._ek)
        return bytes(shared), bytes(ciphertext)

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """Return the shared secret. A wrong-length ciphertext raises :class:`InvalidCiphertextError`; a
        well-sized but altered one yields ML-KEM's implicit-rejection secret (not an error, per FIPS 203)."""
        if len(ciphertext) != CIPHERTEXT_LEN[self.spec]:
            raise InvalidCiphertextError()
        if self._pyca is not None:
            try:
                return self._pyca.decapsulate(ciphertext)
            except ValueError:
                raise InvalidCiphertextError() from None
        return bytes(ML_KEM_512.decaps(self._dk, ciphertext))


def pkcs8_from_seed(spec: str, seed: bytes) -> bytes:
    """PKCS#8 DER (seed form) of an ML-KEM private key: what GenerateDataKeyPair returns."""
    if spec == "ML_KEM_512":
        return _PKCS8_512_PREFIX + seed
    return (
        _PYCA[spec]
        .from_seed_bytes(seed)
        .private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
