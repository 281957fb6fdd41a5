"""What an audit event may contain: per-operation allow-lists of request and response members.

SECURITY INVARIANT: an event holds only members named here. Plaintext, ciphertext blobs, data keys,
private keys, messages, signatures, MACs, shared secrets, peer public keys, import tokens, wrapped key
material, grant tokens and custom key store credentials are never listed, so they can never reach a
record, whatever a handler returns or a client sends. A member missing from a list is simply dropped;
an operation missing from the table logs ``requestParameters: null``. ``tests/unit/audit`` checks every
listed member against botocore's model (exists, is not a blob, is not sensitive, is not a grant token).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

_CRYPTO_DRY = ("KeyId", "DryRun")

REQUEST_MEMBERS: dict[str, tuple[str, ...]] = {
    # cryptographic operations
    "Encrypt": ("KeyId", "EncryptionContext", "EncryptionAlgorithm", "DryRun"),
    "Decrypt": ("KeyId", "EncryptionContext", "EncryptionAlgorithm", "DryRun", "DryRunModifiers"),
    "ReEncrypt": (
        "SourceKeyId",
        "DestinationKeyId",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
        "DryRun",
        "DryRunModifiers",
    ),
    "GenerateDataKey": ("KeyId", "EncryptionContext", "KeySpec", "NumberOfBytes", "DryRun"),
    "GenerateDataKeyWithoutPlaintext": ("KeyId", "EncryptionContext", "KeySpec", "NumberOfBytes", "DryRun"),
    "GenerateDataKeyPair": ("KeyId", "EncryptionContext", "KeyPairSpec", "DryRun"),
    "GenerateDataKeyPairWithoutPlaintext": ("KeyId", "EncryptionContext", "KeyPairSpec", "DryRun"),
    "GenerateRandom": ("NumberOfBytes", "CustomKeyStoreId"),
    "Sign": ("KeyId", "MessageType", "SigningAlgorithm", "DryRun"),
    "Verify": ("KeyId", "MessageType", "SigningAlgorithm", "DryRun"),
    "GenerateMac": ("KeyId", "MacAlgorithm", "DryRun"),
    "VerifyMac": ("KeyId", "MacAlgorithm", "DryRun"),
    "DeriveSharedSecret": ("KeyId", "KeyAgreementAlgorithm", "DryRun"),
    "Encapsulate": _CRYPTO_DRY,
    "Decapsulate": _CRYPTO_DRY,
    "GetPublicKey": ("KeyId",),
    # keys
    "CreateKey": (
        "Description",
        "KeyUsage",
        "KeySpec",
        "CustomerMasterKeySpec",
        "Origin",
        "MultiRegion",
        "Policy",
        "BypassPolicyLockoutSafetyCheck",
        "Tags",
        "CustomKeyStoreId",
        "XksKeyId",
    ),
    "DescribeKey": ("KeyId",),
    "ListKeys": ("Limit", "Marker"),
    "UpdateKeyDescription": ("KeyId", "Description"),
    "EnableKey": ("KeyId",),
    "DisableKey": ("KeyId",),
    "ScheduleKeyDeletion": ("KeyId", "PendingWindowInDays"),
    "CancelKeyDeletion": ("KeyId",),
    "GetKeyPolicy": ("KeyId", "PolicyName"),
    "PutKeyPolicy": ("KeyId", "PolicyName", "Policy", "BypassPolicyLockoutSafetyCheck"),
    "ListKeyPolicies": ("KeyId", "Limit", "Marker"),
    "GetKeyLastUsage": ("KeyId",),
    "ReplicateKey": (
        "KeyId",
        "ReplicaRegion",
        "Description",
        "Policy",
        "BypassPolicyLockoutSafetyCheck",
        "Tags",
    ),
    "UpdatePrimaryRegion": ("KeyId", "PrimaryRegion"),
    # aliases and tags
    "CreateAlias": ("AliasName", "TargetKeyId"),
    "UpdateAlias": ("AliasName", "TargetKeyId"),
    "DeleteAlias": ("AliasName",),
    "ListAliases": ("KeyId", "Limit", "Marker"),
    "TagResource": ("KeyId", "Tags"),
    "UntagResource": ("KeyId", "TagKeys"),
    "ListResourceTags": ("KeyId", "Limit", "Marker"),
    # rotation
    "EnableKeyRotation": ("KeyId", "RotationPeriodInDays"),
    "DisableKeyRotation": ("KeyId",),
    "GetKeyRotationStatus": ("KeyId",),
    "RotateKeyOnDemand": ("KeyId",),
    "ListKeyRotations": ("KeyId", "IncludeKeyMaterial", "Limit", "Marker"),
    # grants (never GrantToken / GrantTokens)
    "CreateGrant": (
        "KeyId",
        "GranteePrincipal",
        "GranteeServicePrincipal",
        "RetiringPrincipal",
        "RetiringServicePrincipal",
        "Operations",
        "Constraints",
        "Name",
        "DryRun",
    ),
    "ListGrants": ("KeyId", "GrantId", "GranteePrincipal", "GranteeServicePrincipal", "Limit", "Marker"),
    "ListRetirableGrants": ("RetiringPrincipal", "RetiringServicePrincipal", "Limit", "Marker"),
    "RetireGrant": ("KeyId", "GrantId", "DryRun"),  # the token form logs null (events.py)
    "RevokeGrant": ("KeyId", "GrantId", "DryRun"),
    # imported key material (never ImportToken / EncryptedKeyMaterial)
    "GetParametersForImport": ("KeyId", "WrappingAlgorithm", "WrappingKeySpec"),
    "ImportKeyMaterial": (
        "KeyId",
        "ValidTo",
        "ExpirationModel",
        "ImportType",
        "KeyMaterialDescription",
        "KeyMaterialId",
    ),
    "DeleteImportedKeyMaterial": ("KeyId", "KeyMaterialId"),
    # custom key stores (never KeyStorePassword / XksProxyAuthenticationCredential)
    "CreateCustomKeyStore": ("CustomKeyStoreName", "CloudHsmClusterId", "CustomKeyStoreType"),
    "ConnectCustomKeyStore": ("CustomKeyStoreId",),
    "DisconnectCustomKeyStore": ("CustomKeyStoreId",),
    "DeleteCustomKeyStore": ("CustomKeyStoreId",),
    "UpdateCustomKeyStore": ("CustomKeyStoreId", "NewCustomKeyStoreName"),
    "DescribeCustomKeyStores": ("CustomKeyStoreId", "CustomKeyStoreName", "Limit", "Marker"),
}

# CloudTrail's own API, answered by openkms (events with eventSource cloudtrail.amazonaws.com).
CLOUDTRAIL_REQUEST_MEMBERS: dict[str, tuple[str, ...]] = {
    "LookupEvents": ("LookupAttributes", "StartTime", "EndTime", "EventCategory", "MaxResults"),
}

# Maps whose keys are user data (encryption contexts): copied verbatim, keys not re-cased.
_VERBATIM_MAPS = frozenset(
    [
        "EncryptionContext",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
        "EncryptionContextSubset",
        "EncryptionContextEquals",
    ]
)

# Defaults KMS shows even when the caller left them out.
_DEFAULTS: dict[str, dict[str, Any]] = {"Decrypt": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}}

READ_ONLY_OPERATIONS = frozenset(
    [
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateRandom",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
        "GetPublicKey",
        "DescribeKey",
        "ListKeys",
        "GetKeyPolicy",
        "ListKeyPolicies",
        "GetKeyLastUsage",
        "ListAliases",
        "ListResourceTags",
        "GetKeyRotationStatus",
        "ListKeyRotations",
        "ListGrants",
        "ListRetirableGrants",
        "GetParametersForImport",
        "DescribeCustomKeyStores",
        "LookupEvents",
    ]
)

# The KeyLastUsageTrackingOperation enum: successful calls of these update GetKeyLastUsage.
TRACKED_OPERATIONS = frozenset(
    [
        "Decrypt",
        "DeriveSharedSecret",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "ReEncrypt",
        "Sign",
        "Verify",
        "VerifyMac",
        "Encapsulate",
        "Decapsulate",
    ]
)


def camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def java_date(epoch: float) -> str:
    """Dates inside responseElements are Java-formatted strings: ``Aug 10, 2022, 10:38:27 PM``."""
    t = datetime.fromtimestamp(epoch, UTC)
    hour = t.hour % 12 or 12
    return f"{t:%b} {t.day}, {t.year}, {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


def _convert(name: str, value: Any) -> Any:
    if name in _VERBATIM_MAPS and isinstance(value, Mapping):
        return dict(value)  # validated by the model: string keys and values
    if isinstance(value, Mapping):
        return {camel(k): _convert(k, v) for k, v in value.items() if not isinstance(v, bytes | bytearray)}
    if isinstance(value, list | tuple):
        return [_convert(name, v) for v in value if not isinstance(v, bytes | bytearray)]
    if isinstance(value, float):
        return java_date(value)  # the only floats in requests are timestamps (ValidTo, StartTime)
    return value


_PLAIN = (str, int)  # bool is an int: copied as is


def _compiled(table: Mapping[str, Sequence[str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    return {op: tuple((m, camel(m)) for m in members) for op, members in table.items()}


_COMPILED = {
    id(REQUEST_MEMBERS): _compiled(REQUEST_MEMBERS),
    id(CLOUDTRAIL_REQUEST_MEMBERS): _compiled(CLOUDTRAIL_REQUEST_MEMBERS),
}


def request_parameters(
    operation: str, params: Mapping[str, Any] | None, table: Mapping[str, Sequence[str]] = REQUEST_MEMBERS
) -> dict[str, Any] | None:
    """The allow-listed request members in lowerCamelCase, as the caller sent them."""
    compiled = _COMPILED.get(id(table))
    members = (compiled or _compiled(table)).get(operation)
    if members is None or params is None:
        return None
    out: dict[str, Any] = {}
    for member, name in members:
        value = params.get(member)
        if value is None or isinstance(value, bytes | bytearray):
            continue
        out[name] = value if isinstance(value, _PLAIN) else _convert(member, value)
    defaults = _DEFAULTS.get(operation)
    if defaults:
        for key, value in defaults.items():
            out.setdefault(key, value)
    return out or None


_METADATA_DATES = frozenset({"CreationDate", "DeletionDate", "ValidTo"})


def _key_metadata(md: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in md.items():
        if isinstance(value, bytes | bytearray):
            continue
        if name in _METADATA_DATES and isinstance(value, int | float):
            out[camel(name)] = java_date(float(value))
        else:
            out[camel(name)] = _convert(name, value)
    return out


def _key_id_of(resources: Sequence[str]) -> dict[str, Any] | None:
    return {"keyId": resources[0]} if resources else None


def _schedule(result: Mapping[str, Any], resources: Sequence[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {"keyId": result.get("KeyId"), "keyState": result.get("KeyState")}
    if isinstance(result.get("DeletionDate"), int | float):
        out["deletionDate"] = java_date(float(result["DeletionDate"]))
    if "PendingWindowInDays" in result:
        out["pendingWindowInDays"] = result["PendingWindowInDays"]
    return out


def _create_key(result: Mapping[str, Any], resources: Sequence[str]) -> dict[str, Any] | None:
    md = result.get("KeyMetadata")
    return {"keyMetadata": _key_metadata(md)} if isinstance(md, Mapping) else None


def _grant(result: Mapping[str, Any], resources: Sequence[str]) -> dict[str, Any] | None:
    return {"grantId": result.get("GrantId"), "keyId": resources[0] if resources else None}


def _result_key_id(result: Mapping[str, Any], resources: Sequence[str]) -> dict[str, Any] | None:
    return {"keyId": result.get("KeyId") or (resources[0] if resources else None)}


def _management(result: Mapping[str, Any], resources: Sequence[str]) -> dict[str, Any] | None:
    return _key_id_of(resources)


ResponseBuilder = Callable[[Mapping[str, Any], Sequence[str]], "dict[str, Any] | None"]

# Successful calls only; every other operation (cryptographic and read operations) logs null.
RESPONSE_ELEMENTS: dict[str, ResponseBuilder] = {
    "CreateKey": _create_key,
    "ScheduleKeyDeletion": _schedule,
    "CancelKeyDeletion": _result_key_id,
    "RotateKeyOnDemand": _result_key_id,
    "CreateGrant": _grant,
    **dict.fromkeys(
        [
            "EnableKey",
            "DisableKey",
            "UpdateKeyDescription",
            "PutKeyPolicy",
            "TagResource",
            "UntagResource",
            "EnableKeyRotation",
            "DisableKeyRotation",
            "ImportKeyMaterial",
            "DeleteImportedKeyMaterial",
            "UpdatePrimaryRegion",
        ],
        _management,
    ),
}


def response_elements(
    operation: str, result: Mapping[str, Any] | None, resources: Sequence[str]
) -> dict[str, Any] | None:
    build = RESPONSE_ELEMENTS.get(operation)
    if build is None or result is None:
        return None
    return build(result, resources)
