"""Which GetParametersForImport wrapping key spec and algorithm may carry a key's material (kms-semantics.md
section 7.4; AWS developer guide "Step 2: Download the wrapping public key and import token", table "Select a
wrapping algorithm"):

* ``SM2`` wrapping keys and ``SM2PKE`` exist only in China (``cn-``) Regions (UnsupportedOperationException
  elsewhere) and only together; they wrap asymmetric material (RSA, ECC, SM2 private keys), not symmetric
  or HMAC keys.
* ``RSA_AES_KEY_WRAP_SHA_1/256`` are not offered in China Regions, where RSA private keys are wrapped with
  ``SM2PKE`` instead.
* ``RSAES_OAEP_*`` cannot carry an RSA private key, nor an ECC_NIST_P521 key under RSA_2048.
* ``RSAES_PKCS1_V1_5`` was withdrawn in October 2023.

Refusals other than the Region gate are ValidationException (AWS's wording unverified).
"""

from __future__ import annotations

from openkms import errors
from openkms.service.regions import is_china

_SYMMETRIC_OR_HMAC = frozenset({"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})


def check_wrapping(region: str, key_spec: str, algorithm: str, spec: str) -> None:
    """Raise the AWS error unless ``algorithm`` with a ``spec`` wrapping key may carry ``key_spec`` material
    in ``region``."""
    china = is_china(region)
    if algorithm == "SM2PKE" or spec == "SM2":
        if not china:
            raise errors.UnsupportedOperationException(
                "The SM2 wrapping key spec and SM2PKE wrapping algorithm are only available in the "
                "AWS China Regions (cn-*)."
            )
        if algorithm != "SM2PKE":
            raise errors.ValidationException(
                f"Wrapping algorithm {algorithm} cannot be used with wrapping key spec SM2: use SM2PKE."
            )
        if spec != "SM2":
            raise errors.ValidationException(
                f"Wrapping algorithm SM2PKE cannot be used with wrapping key spec {spec}: use SM2."
            )
        if key_spec in _SYMMETRIC_OR_HMAC:
            raise errors.ValidationException(
                f"Wrapping algorithm SM2PKE cannot wrap key material of key spec {key_spec}: SM2 wrapping "
                "keys are for asymmetric key material. Use RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1."
            )
        return
    if algorithm == "RSAES_PKCS1_V1_5":
        raise errors.ValidationException(
            "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported. Use RSAES_OAEP_SHA_256 "
            "or RSA_AES_KEY_WRAP_SHA_256."
        )
    if algorithm.startswith("RSA_AES_KEY_WRAP") and china:
        raise errors.ValidationException(
            f"The {algorithm} wrapping algorithm is not supported in the China Regions: use SM2PKE with "
            "the SM2 wrapping key spec, or an RSAES_OAEP wrapping algorithm."
        )
    if algorithm.startswith("RSAES_OAEP"):
        if key_spec.startswith("RSA_"):
            alternative = "SM2PKE" if china else "an RSA_AES_KEY_WRAP wrapping algorithm"
            raise errors.ValidationException(
                f"Wrapping algorithm {algorithm} cannot wrap key material of key spec {key_spec}: "
                f"use {alternative} for RSA private keys."
            )
        if key_spec == "ECC_NIST_P521" and spec == "RSA_2048":
            raise errors.ValidationException(
                f"Wrapping key spec RSA_2048 with {algorithm} cannot wrap ECC_NIST_P521 key material: "
                "use a longer wrapping key or an RSA_AES_KEY_WRAP wrapping algorithm."
            )
