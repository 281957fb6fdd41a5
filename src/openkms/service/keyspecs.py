"""Key specs x key usages x algorithm lists (kms-semantics.md section 3.1), as data.

``SUPPORTED_SPECS`` names the specs this build can create: all of them (SM2 only in China Regions,
service/regions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
SIGN_VERIFY = "SIGN_VERIFY"
GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
KEY_AGREEMENT = "KEY_AGREEMENT"
ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"

_RSA_ENC = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
_RSA_SIGN = (
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
)


@dataclass(frozen=True)
class SpecInfo:
    usages: dict[str, tuple[str, ...]]  # usage -> algorithm list
    legacy_name: bool = True  # also a CustomerMasterKeySpec value


SPECS: dict[str, SpecInfo] = {
    "SYMMETRIC_DEFAULT": SpecInfo({ENCRYPT_DECRYPT: ("SYMMETRIC_DEFAULT",)}),
    "HMAC_224": SpecInfo({GENERATE_VERIFY_MAC: ("HMAC_SHA_224",)}),
    "HMAC_256": SpecInfo({GENERATE_VERIFY_MAC: ("HMAC_SHA_256",)}),
    "HMAC_384": SpecInfo({GENERATE_VERIFY_MAC: ("HMAC_SHA_384",)}),
    "HMAC_512": SpecInfo({GENERATE_VERIFY_MAC: ("HMAC_SHA_512",)}),
    **{
        f"RSA_{bits}": SpecInfo({ENCRYPT_DECRYPT: _RSA_ENC, SIGN_VERIFY: _RSA_SIGN})
        for bits in (2048, 3072, 4096)
    },
    "ECC_NIST_P256": SpecInfo({SIGN_VERIFY: ("ECDSA_SHA_256",), KEY_AGREEMENT: ("ECDH",)}),
    "ECC_NIST_P384": SpecInfo({SIGN_VERIFY: ("ECDSA_SHA_384",), KEY_AGREEMENT: ("ECDH",)}),
    "ECC_NIST_P521": SpecInfo({SIGN_VERIFY: ("ECDSA_SHA_512",), KEY_AGREEMENT: ("ECDH",)}),
    "ECC_SECG_P256K1": SpecInfo({SIGN_VERIFY: ("ECDSA_SHA_256",)}),
    "ECC_NIST_EDWARDS25519": SpecInfo({SIGN_VERIFY: ("ED25519_SHA_512", "ED25519_PH_SHA_512")}, False),
    **{f"ML_DSA_{n}": SpecInfo({SIGN_VERIFY: ("ML_DSA_SHAKE_256",)}, False) for n in (44, 65, 87)},
    **{f"ML_KEM_{n}": SpecInfo({ENCAPSULATE_DECAPSULATE: ("ML_KEM",)}, False) for n in (512, 768, 1024)},
    "SM2": SpecInfo({ENCRYPT_DECRYPT: ("SM2PKE",), SIGN_VERIFY: ("SM2DSA",), KEY_AGREEMENT: ("ECDH",)}),
}

SUPPORTED_SPECS = frozenset(SPECS)

ALGORITHM_LIST_MEMBER = {
    ENCRYPT_DECRYPT: "EncryptionAlgorithms",
    SIGN_VERIFY: "SigningAlgorithms",
    GENERATE_VERIFY_MAC: "MacAlgorithms",
    KEY_AGREEMENT: "KeyAgreementAlgorithms",
    ENCAPSULATE_DECAPSULATE: "EncapsulationAlgorithms",
}
