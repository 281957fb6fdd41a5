"""Sign, Verify and GetPublicKey (kms-semantics.md section 3.3).

Order of checks (section 4.2): resolution, key state, key usage, algorithm, message type and digest
length (ValidationException), cryptography, then the DryRun answer. Verify never answers
``SignatureValid: false``: any failure is KMSInvalidSignatureException with an empty message.
"""

from __future__ import annotations

from openkms import errors
from openkms.crypto import signing
from openkms.crypto.errors import InvalidSignatureError
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.key_material import check_algorithm, key_pair, usable_key
from openkms.service.keyspecs import ALGORITHM_LIST_MEMBER, SIGN_VERIFY, SPECS
from openkms.service.keystate import StateRule, check_state
from openkms.storage.base import KeyRecord

_MESSAGE_TYPES = {t.value: t for t in signing.MessageType}
_ALGORITHMS = {a.value: a for a in signing.SigningAlgorithm}


class SigningOps:
    def __init__(self, core: Core) -> None:
        self.core = core

    def _prepare(
        self, ctx: RequestContext, p: Params, operation: str
    ) -> tuple[KeyRecord, signing.SigningAlgorithm, signing.MessageType]:
        key = usable_key(self.core, ctx, p["KeyId"], operation, SIGN_VERIFY)
        name = p["SigningAlgorithm"]
        check_algorithm(key, name)
        algorithm = _ALGORITHMS[name]  # check_algorithm passed: the key's list names only known ones
        self.core.check_grant_tokens(p)
        message_type = _MESSAGE_TYPES[p.get("MessageType", "RAW")]
        if message_type not in signing.MESSAGE_TYPES[algorithm]:
            # [unverified] wording: AWS documents the rule (for example ED25519_PH_SHA_512 requires DIGEST),
            # not its message. Pinned by tests.
            raise errors.ValidationException(
                f"MessageType {message_type.value} is not supported with signing algorithm {name}."
            )
        message = p["Message"]
        if message_type is signing.MessageType.DIGEST and len(message) != signing.digest_length(algorithm):
            raise errors.ValidationException(f"Digest is invalid length for algorithm {name}.")
        if message_type is signing.MessageType.EXTERNAL_MU and len(message) != signing.MU_LENGTH:
            # [unverified] wording, modelled on the DIGEST message.
            raise errors.ValidationException(f"External mu is invalid length for algorithm {name}.")
        return key, algorithm, message_type

    def sign(self, ctx: RequestContext, p: Params) -> Result:
        key, algorithm, message_type = self._prepare(ctx, p, "Sign")
        pair = key_pair(self.core, key)
        if p.get("DryRun"):
            raise errors.dry_run()
        signature = signing.sign(pair, algorithm, p["Message"], message_type)
        return {"KeyId": self.core.arn(key), "Signature": signature, "SigningAlgorithm": algorithm.value}

    def verify(self, ctx: RequestContext, p: Params) -> Result:
        key, algorithm, message_type = self._prepare(ctx, p, "Verify")
        pair = key_pair(self.core, key)
        try:
            signing.verify(pair, algorithm, p["Message"], message_type, p["Signature"])
        except InvalidSignatureError:
            raise errors.KMSInvalidSignatureException("") from None
        if p.get("DryRun"):
            raise errors.dry_run()
        return {"KeyId": self.core.arn(key), "SignatureValid": True, "SigningAlgorithm": algorithm.value}

    def get_public_key(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=True, action="GetPublicKey")
        arn = self.core.arn(key)
        check_state(StateRule.CRYPTO, key.state, arn)
        self.core.check_grant_tokens(p)
        material = self.core.material(key, key.current_material_id) if key.current_material_id else None
        if material is None or material.public_key is None:
            # [unverified] wording; AWS answers UnsupportedOperationException for keys without a public key.
            raise errors.UnsupportedOperationException(
                f"{arn} key spec {key.key_spec} is not an asymmetric key spec; it has no public key."
            )
        spec = SPECS[key.key_spec]
        result: Result = {"KeyId": arn, "PublicKey": material.public_key, "KeySpec": key.key_spec}
        if spec.legacy_name:
            result["CustomerMasterKeySpec"] = key.key_spec
        result["KeyUsage"] = key.key_usage
        result[ALGORITHM_LIST_MEMBER[key.key_usage]] = list(spec.usages[key.key_usage])
        return result
