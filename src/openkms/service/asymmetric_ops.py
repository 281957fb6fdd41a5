"""Asymmetric Encrypt/Decrypt/ReEncrypt (RSAES-OAEP, SM2PKE), DeriveSharedSecret (ECDH),
Encapsulate/Decapsulate (ML-KEM) -- kms-semantics.md section 3.3.

``CryptoOps`` hands Encrypt, Decrypt and ReEncrypt over to this module when an asymmetric encryption
algorithm is named. RSA ciphertexts are bare OAEP output (no header), so Decrypt needs ``KeyId``; every
decryption failure is InvalidCiphertextException with an empty message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from openkms import errors
from openkms.crypto import asymmetric, kem
from openkms.crypto.errors import InvalidCiphertextError, InvalidPublicKeyError
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result, reject_recipient
from openkms.service.key_material import check_algorithm, key_pair, usable_key
from openkms.service.keyspecs import ENCAPSULATE_DECAPSULATE, ENCRYPT_DECRYPT, KEY_AGREEMENT
from openkms.storage.base import KeyRecord

if TYPE_CHECKING:
    from openkms.service.crypto_ops import CryptoOps

ASYMMETRIC_ENCRYPTION = frozenset({"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"})
_OAEP = {a.value: a for a in asymmetric.EncryptionAlgorithm}


def is_asymmetric(algorithm: str | None) -> bool:
    return algorithm in ASYMMETRIC_ENCRYPTION


def _no_context(p: Params, member: str = "EncryptionContext") -> None:
    # [unverified] AWS wording: an encryption context only means something to symmetric keys.
    if p.get(member):
        raise errors.ValidationException(
            "EncryptionContext is not supported with asymmetric encryption algorithms."
        )


class AsymmetricOps:
    def __init__(self, core: Core) -> None:
        self.core = core

    # --- RSAES-OAEP ------------------------------------------------------------------------------------
    def _oaep_key(
        self, ctx: RequestContext, key_id: str, operation: str, name: str, permission: str | None = None
    ) -> tuple[KeyRecord, asymmetric.EncryptionAlgorithm]:
        key = usable_key(self.core, ctx, key_id, operation, ENCRYPT_DECRYPT, permission)
        check_algorithm(key, name)
        algorithm = _OAEP[name]  # check_algorithm passed: the key's list names only known ones
        return key, algorithm

    @staticmethod
    def _check_size(key: KeyRecord, algorithm: asymmetric.EncryptionAlgorithm, plaintext: bytes) -> None:
        limit = asymmetric.oaep_max_plaintext(key.key_spec, algorithm)
        if len(plaintext) > limit:
            raise errors.ValidationException(
                f"Algorithm {algorithm.value} and key spec {key.key_spec} cannot encrypt data larger "
                f"than {limit} bytes."
            )

    def _seal(self, key: KeyRecord, algorithm: asymmetric.EncryptionAlgorithm, plaintext: bytes) -> bytes:
        self._check_size(key, algorithm, plaintext)
        return asymmetric.oaep_encrypt(key_pair(self.core, key), algorithm, plaintext)

    def _open(self, key: KeyRecord, algorithm: asymmetric.EncryptionAlgorithm, blob: bytes) -> bytes:
        try:
            return asymmetric.oaep_decrypt(key_pair(self.core, key), algorithm, blob)
        except InvalidCiphertextError:
            raise errors.InvalidCiphertextException("") from None

    def encrypt(self, ctx: RequestContext, p: Params) -> Result:
        key, algorithm = self._oaep_key(ctx, p["KeyId"], "Encrypt", p["EncryptionAlgorithm"])
        self.core.check_grant_tokens(p)
        _no_context(p)
        if p.get("DryRun"):
            self._check_size(key, algorithm, p["Plaintext"])
            raise errors.dry_run()
        blob = self._seal(key, algorithm, p["Plaintext"])
        return {"CiphertextBlob": blob, "KeyId": self.core.arn(key), "EncryptionAlgorithm": algorithm.value}

    def decrypt(self, ctx: RequestContext, p: Params) -> Result:
        reject_recipient(p)
        name = p["EncryptionAlgorithm"]
        if p.get("KeyId") is None:
            raise errors.ValidationException(f"KeyId is required when the encryption algorithm is {name}.")
        key, algorithm = self._oaep_key(ctx, p["KeyId"], "Decrypt", name)
        self.core.check_grant_tokens(p)
        _no_context(p)
        if "IGNORE_CIPHERTEXT" in p.get("DryRunModifiers", ()):
            if not p.get("DryRun"):
                raise errors.ValidationException("DryRunModifiers can only be used when DryRun is true.")
            raise errors.dry_run()
        plaintext = self._open(key, algorithm, p["CiphertextBlob"])
        if p.get("DryRun"):
            raise errors.dry_run()
        return {"KeyId": self.core.arn(key), "Plaintext": plaintext, "EncryptionAlgorithm": algorithm.value}

    def re_encrypt(self, ctx: RequestContext, p: Params, symmetric: CryptoOps) -> Result:
        """ReEncrypt where the source or the destination (or both) is an RSA key."""
        from openkms.service.crypto_ops import encoded_context  # crypto_ops imports this module

        source_name = p.get("SourceEncryptionAlgorithm") or "SYMMETRIC_DEFAULT"
        destination_name = p.get("DestinationEncryptionAlgorithm") or "SYMMETRIC_DEFAULT"
        ignore_ciphertext = "IGNORE_CIPHERTEXT" in p.get("DryRunModifiers", ())
        if ignore_ciphertext and not p.get("DryRun"):
            raise errors.ValidationException("DryRunModifiers can only be used when DryRun is true.")
        # Source: open the ciphertext (or, with IGNORE_CIPHERTEXT, only check the key).
        source_material: str | None = None
        plaintext = b""
        if is_asymmetric(source_name):
            if p.get("SourceKeyId") is None:
                raise errors.ValidationException(
                    f"SourceKeyId is required when the source encryption algorithm is {source_name}."
                )
            _no_context(p, "SourceEncryptionContext")
            source, source_alg = self._oaep_key(
                ctx, p["SourceKeyId"], "ReEncrypt", source_name, "ReEncryptFrom"
            )
            if not ignore_ciphertext:
                plaintext = self._open(source, source_alg, p["CiphertextBlob"])
        elif ignore_ciphertext:
            if p.get("SourceKeyId") is None:
                raise errors.ValidationException(
                    "KeyId is required when DryRunModifiers includes IGNORE_CIPHERTEXT."
                )
            source = symmetric._encrypt_key(ctx, p["SourceKeyId"], "ReEncrypt", None, "ReEncryptFrom")
        else:
            source_context = encoded_context(p.get("SourceEncryptionContext"))
            source, header = symmetric._open(
                ctx,
                p["CiphertextBlob"],
                source_context,
                p.get("SourceKeyId"),
                "ReEncrypt",
                None,
                "ReEncryptFrom",
            )
            opened = symmetric._decrypt(source, header, p["CiphertextBlob"], source_context)
            plaintext, source_material = opened.plaintext, opened.material_id
        # Destination.
        if is_asymmetric(destination_name):
            _no_context(p, "DestinationEncryptionContext")
            destination, destination_alg = self._oaep_key(
                ctx, p["DestinationKeyId"], "ReEncrypt", destination_name, "ReEncryptTo"
            )
        else:
            destination = symmetric._encrypt_key(
                ctx, p["DestinationKeyId"], "ReEncrypt", destination_name, "ReEncryptTo"
            )
        self.core.check_grant_tokens(p)
        if p.get("DryRun"):
            if is_asymmetric(destination_name) and not ignore_ciphertext:
                # the real call would fail on a plaintext too large for OAEP: DryRun must say so too
                self._check_size(destination, destination_alg, plaintext)
            raise errors.dry_run()
        result: Result = {
            "SourceKeyId": self.core.arn(source),
            "KeyId": self.core.arn(destination),
            "SourceEncryptionAlgorithm": source_name,
            "DestinationEncryptionAlgorithm": destination_name,
        }
        if is_asymmetric(destination_name):
            result["CiphertextBlob"] = self._seal(destination, destination_alg, plaintext)
        else:
            context = encoded_context(p.get("DestinationEncryptionContext"))
            result["CiphertextBlob"], result["DestinationKeyMaterialId"] = symmetric._seal(
                destination, plaintext, context
            )
        if source_material is not None:
            result["SourceKeyMaterialId"] = source_material
        return result

    # --- ECDH ------------------------------------------------------------------------------------------
    def derive_shared_secret(self, ctx: RequestContext, p: Params) -> Result:
        key = usable_key(self.core, ctx, p["KeyId"], "DeriveSharedSecret", KEY_AGREEMENT)
        check_algorithm(key, p["KeyAgreementAlgorithm"])
        reject_recipient(p)
        self.core.check_grant_tokens(p)
        try:
            secret = asymmetric.derive_shared_secret(key_pair(self.core, key), p["PublicKey"])
        except InvalidPublicKeyError:
            raise errors.ValidationException("") from None  # AWS answers an empty message here
        if p.get("DryRun"):
            raise errors.dry_run()
        return {
            "KeyId": self.core.arn(key),
            "SharedSecret": secret,
            "KeyAgreementAlgorithm": "ECDH",
            "KeyOrigin": key.origin,
        }

    # --- ML-KEM ----------------------------------------------------------------------------------------
    def _kem_key(self, ctx: RequestContext, p: Params, operation: str) -> KeyRecord:
        key = usable_key(self.core, ctx, p["KeyId"], operation, ENCAPSULATE_DECAPSULATE)
        check_algorithm(key, p["EncapsulationAlgorithm"])
        self.core.check_grant_tokens(p)
        return key

    def encapsulate(self, ctx: RequestContext, p: Params) -> Result:
        key = self._kem_key(ctx, p, "Encapsulate")
        pair = key_pair(self.core, key)
        if p.get("DryRun"):
            raise errors.dry_run()
        assert isinstance(pair.private, kem.MlKemKey)
        secret, ciphertext = pair.private.encapsulate()
        return {
            "KeyId": self.core.arn(key),
            "SharedSecret": secret,
            "SharedSecretCiphertextBlob": ciphertext,
            "EncapsulationAlgorithm": "ML_KEM",
        }

    def decapsulate(self, ctx: RequestContext, p: Params) -> Result:
        key = self._kem_key(ctx, p, "Decapsulate")
        pair = key_pair(self.core, key)
        assert isinstance(pair.private, kem.MlKemKey)
        try:
            secret = pair.private.decapsulate(p["SharedSecretCiphertextBlob"])
        except InvalidCiphertextError:
            raise errors.InvalidCiphertextException("") from None
        if p.get("DryRun"):
            raise errors.dry_run()
        return {"KeyId": self.core.arn(key), "SharedSecret": secret, "EncapsulationAlgorithm": "ML_KEM"}
