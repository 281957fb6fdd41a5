"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext (kms-semantics.md section 3.3).

The pair is generated here, returned (public key as DER SubjectPublicKeyInfo, private key as PKCS#8 DER)
and forgotten; the private key is also returned sealed under a symmetric KMS key with the caller's
encryption context, exactly as Encrypt would seal it, so Decrypt returns the PKCS#8 bytes.
RSA generation takes up to seconds, so these operations run on a worker thread, not inline.
"""

from __future__ import annotations

from openkms import errors
from openkms.crypto import asymmetric
from openkms.service.context import RequestContext
from openkms.service.core import Params, Result, reject_recipient
from openkms.service.crypto_ops import CryptoOps, encoded_context
from openkms.service.regions import check_spec_region


class DataKeyPairs:
    def __init__(self, crypto: CryptoOps) -> None:
        self.crypto = crypto
        self.core = crypto.core

    def generate_data_key_pair(self, ctx: RequestContext, p: Params) -> Result:
        reject_recipient(p)
        return self._pair(ctx, p, "GenerateDataKeyPair", with_plaintext=True)

    def generate_data_key_pair_without_plaintext(self, ctx: RequestContext, p: Params) -> Result:
        return self._pair(ctx, p, "GenerateDataKeyPairWithoutPlaintext", with_plaintext=False)

    def _pair(self, ctx: RequestContext, p: Params, operation: str, *, with_plaintext: bool) -> Result:
        key = self.crypto._encrypt_key(ctx, p["KeyId"], operation, None)
        self.core.check_grant_tokens(p)
        spec = p["KeyPairSpec"]
        check_spec_region(spec, ctx.region)
        context = encoded_context(p.get("EncryptionContext"))
        if p.get("DryRun"):
            raise errors.dry_run()
        private_der, public_der = asymmetric.generate_data_key_pair(spec)
        blob, material_id = self.crypto._seal(key, private_der, context)
        result: Result = {
            "PrivateKeyCiphertextBlob": blob,
            "PublicKey": public_der,
            "KeyId": self.core.arn(key),
            "KeyPairSpec": spec,
            "KeyMaterialId": material_id,
        }
        if with_plaintext:
            result["PrivateKeyPlaintext"] = private_der
        return result
