"""The condition keys of one permission check (kms-semantics.md section 6.5), names lower-cased.

Three layers, merged per check: the caller's (principal and connection: built once per request), the
key's (spec, usage, origin, tags, aliases: cached per key by ``Authorizer``) and the request's (values of
the request members that the action's row of the 6.5 table names).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from openkms.authz.model import ConditionValue, Principal, PrincipalType
from openkms.service.context import RequestContext
from openkms.storage.base import KeyRecord

Keys = dict[str, ConditionValue]

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"

# action -> (encryption context member, encryption algorithm member) of the request
_CONTEXT_MEMBERS: dict[str, tuple[str, str | None]] = {
    "Encrypt": ("EncryptionContext", "EncryptionAlgorithm"),
    "Decrypt": ("EncryptionContext", "EncryptionAlgorithm"),
    "GenerateDataKey": ("EncryptionContext", None),
    "GenerateDataKeyWithoutPlaintext": ("EncryptionContext", None),
    "GenerateDataKeyPair": ("EncryptionContext", None),
    "GenerateDataKeyPairWithoutPlaintext": ("EncryptionContext", None),
    "ReEncryptFrom": ("SourceEncryptionContext", "SourceEncryptionAlgorithm"),
    "ReEncryptTo": ("DestinationEncryptionContext", "DestinationEncryptionAlgorithm"),
}
# kms:RequestAlias applies to these (section 6.5): the cryptographic operations, DescribeKey, GetPublicKey
REQUEST_ALIAS_ACTIONS = frozenset(
    {
        *_CONTEXT_MEMBERS,
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
        "DescribeKey",
        "GetPublicKey",
    }
)
_GRANT_ACTIONS = frozenset({"CreateGrant", "ListGrants", "RevokeGrant"})


def context_member(action: str) -> str | None:
    """The request member holding the encryption context that ``action`` is checked against."""
    members = _CONTEXT_MEMBERS.get(action)
    return members[0] if members is not None else None


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def caller_keys(ctx: RequestContext, principal: Principal) -> Keys:
    """Global keys of the caller, the connection and the time (the same for every check of one request)."""
    keys = connection_keys(ctx, principal)
    keys["aws:currenttime"] = iso_time(ctx.now)
    keys["aws:epochtime"] = int(ctx.now)
    return keys


def connection_keys(ctx: RequestContext, principal: Principal) -> Keys:
    """``caller_keys`` without the time: the same for every request of one caller from one address
    (``Authorizer`` caches them)."""
    keys: Keys = {
        "aws:principalarn": principal.principal_arn,
        "aws:principalaccount": principal.account,
        "aws:principaltype": principal.type.value,
        "aws:userid": principal.user_id,
        "aws:sourceip": ctx.source_ip,
        "aws:securetransport": ctx.secure,
        "aws:requestedregion": ctx.region,
        "kms:calleraccount": principal.account,
    }
    if principal.type is PrincipalType.USER:
        keys["aws:username"] = principal.arn.rpartition("/")[2]
    for name, value in principal.tags.items():
        keys["aws:principaltag/" + name.lower()] = value
    if ctx.caller.via_service:
        keys["kms:viaservice"] = f"{ctx.caller.via_service}.{ctx.region}.amazonaws.com"
    return keys


def key_keys(key: KeyRecord, tags: Mapping[str, str], aliases: Sequence[str]) -> Keys:
    """Keys that depend only on the key (cached by the caller until the key, its tags or aliases change)."""
    keys: Keys = {
        "kms:keyspec": key.key_spec,
        "kms:customermasterkeyspec": key.key_spec,
        "kms:keyusage": key.key_usage,
        "kms:customermasterkeyusage": key.key_usage,
        "kms:keyorigin": key.origin,
        "kms:multiregion": key.multi_region,
        "kms:resourcealiases": tuple(aliases),
    }
    for name, value in tags.items():
        keys["aws:resourcetag/" + name.lower()] = value
    return keys


def _context_keys(keys: Keys, context: Mapping[str, str] | None) -> None:
    context = context or {}
    for name, value in context.items():
        keys["kms:encryptioncontext:" + name.lower()] = value
    keys["kms:encryptioncontextkeys"] = tuple(context)


def _tag_keys(keys: Keys, tags: Sequence[Mapping[str, str]]) -> None:
    for tag in tags:
        keys["aws:requesttag/" + tag["TagKey"].lower()] = tag["TagValue"]
    keys["aws:tagkeys"] = tuple(tag["TagKey"] for tag in tags)


def _grant_keys(keys: Keys, params: Mapping[str, Any]) -> None:
    """CreateGrant: the keys describe the requested grant, so a policy can limit the grants made with it
    (absent, ``ForAllValues:`` on kms:GrantOperations would allow any operations). The encryption
    context keys carry the grant's context constraint."""
    keys["kms:grantoperations"] = tuple(params.get("Operations") or ())
    for member, name in (
        ("GranteePrincipal", "kms:granteeprincipal"),
        ("RetiringPrincipal", "kms:retiringprincipal"),
    ):
        if params.get(member) is not None:
            keys[name] = params[member]
    constraints = params.get("Constraints") or {}
    for member in ("EncryptionContextEquals", "EncryptionContextSubset"):
        if constraints.get(member) is not None:
            keys["kms:grantconstrainttype"] = member
            _context_keys(keys, constraints[member])


def request_keys(action: str, params: Mapping[str, Any], request_alias: str | None) -> Keys:
    """Keys taken from the request members of ``action`` (section 6.5 table)."""
    keys: Keys = {}
    members = _CONTEXT_MEMBERS.get(action)
    if members is not None:
        context_member, algorithm_member = members
        _context_keys(keys, params.get(context_member))
        algorithm = params.get(algorithm_member) if algorithm_member else None
        keys["kms:encryptionalgorithm"] = algorithm or SYMMETRIC_DEFAULT
        if "KeyPairSpec" in params:
            keys["kms:datakeypairspec"] = params["KeyPairSpec"]
    elif action in ("Sign", "Verify"):
        keys["kms:signingalgorithm"] = params.get("SigningAlgorithm", "")
        keys["kms:messagetype"] = params.get("MessageType", "RAW")
    elif action in ("GenerateMac", "VerifyMac"):
        keys["kms:macalgorithm"] = params.get("MacAlgorithm", "")
    elif action == "DeriveSharedSecret":
        keys["kms:keyagreementalgorithm"] = params.get("KeyAgreementAlgorithm", "")
    elif action in ("PutKeyPolicy", "GetKeyPolicy"):
        keys["kms:policyname"] = params.get("PolicyName", "default")
        if action == "PutKeyPolicy":
            keys["kms:bypasspolicylockoutsafetycheck"] = bool(params.get("BypassPolicyLockoutSafetyCheck"))
    elif action == "EnableKeyRotation":
        keys["kms:rotationperiodindays"] = int(params.get("RotationPeriodInDays", 365))
    elif action == "ScheduleKeyDeletion":
        keys["kms:schedulekeydeletionpendingwindowindays"] = int(params.get("PendingWindowInDays", 30))
    elif action == "TagResource":
        _tag_keys(keys, params.get("Tags", ()))
    elif action == "UntagResource":
        keys["aws:tagkeys"] = tuple(params.get("TagKeys", ()))
    elif action == "GetParametersForImport":
        keys["kms:wrappingalgorithm"] = params.get("WrappingAlgorithm", "")
        keys["kms:wrappingkeyspec"] = params.get("WrappingKeySpec", "")
    elif action == "ImportKeyMaterial":
        keys["kms:expirationmodel"] = params.get("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
        if params.get("ValidTo") is not None:
            # a timestamp that policies compare as Unix seconds with the Numeric operators (section 6.5)
            keys["kms:validto"] = params["ValidTo"]
    elif action in _GRANT_ACTIONS:
        keys["kms:grantisforawsresource"] = False
        if action == "CreateGrant":
            _grant_keys(keys, params)
    if request_alias is not None and action in REQUEST_ALIAS_ACTIONS:
        keys["kms:requestalias"] = request_alias
    return keys


def create_key_keys(params: Mapping[str, Any]) -> Keys:
    """CreateKey (and its TagResource check): the key's properties come from the request."""
    spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC_DEFAULT
    usage = params.get("KeyUsage") or ("ENCRYPT_DECRYPT" if spec == SYMMETRIC_DEFAULT else "")
    keys: Keys = {
        "kms:keyspec": spec,
        "kms:customermasterkeyspec": spec,
        "kms:keyusage": usage,
        "kms:customermasterkeyusage": usage,
        "kms:keyorigin": params.get("Origin", "AWS_KMS"),
        "kms:multiregion": bool(params.get("MultiRegion", False)),
        "kms:bypasspolicylockoutsafetycheck": bool(params.get("BypassPolicyLockoutSafetyCheck")),
    }
    if "Tags" in params:
        _tag_keys(keys, params["Tags"])
    return keys
