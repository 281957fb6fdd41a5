"""The pure rules of grants (kms-semantics.md section 6.8): which operations a key allows, constraint
checks, principal syntax, who is named by a principal, and the grant-derived CreateGrant rule.

Nothing here reads storage or the request context: the operations in ``grants.py`` call these with
values, and the authorization layer may call :func:`derived_grant_allowed` directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from openkms import errors
from openkms.authz.model import Grant
from openkms.service.keyspecs import (
    ENCAPSULATE_DECAPSULATE,
    ENCRYPT_DECRYPT,
    GENERATE_VERIFY_MAC,
    KEY_AGREEMENT,
    SIGN_VERIFY,
)
from openkms.storage.base import GrantRecord, KeyRecord

MAX_GRANTS_PER_KEY = 50_000
MAX_CONSTRAINT_PAIRS = 8
MAX_CONSTRAINT_VALUE = 384
EQUALS = "EncryptionContextEquals"
SUBSET = "EncryptionContextSubset"
SOURCE_ARN = "SourceArn"

_EVERY_KEY = ("CreateGrant", "RetireGrant", "DescribeKey")
_SYMMETRIC = (
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
)
# Grant operations that are valid per key usage (asymmetric and HMAC keys), besides _EVERY_KEY.
_BY_USAGE: dict[str, tuple[str, ...]] = {
    ENCRYPT_DECRYPT: ("Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"),
    SIGN_VERIFY: ("Sign", "Verify", "GetPublicKey"),
    GENERATE_VERIFY_MAC: ("GenerateMac", "VerifyMac"),
    KEY_AGREEMENT: ("DeriveSharedSecret", "GetPublicKey"),
    ENCAPSULATE_DECAPSULATE: ("Encapsulate", "Decapsulate", "GetPublicKey"),
}

GRANT_ID = re.compile(r"[0-9a-f]{64}")
# IAM principals a grant may name: the account (root), users, roles, role sessions, federated users.
_PRINCIPAL = re.compile(
    r"arn:aws[a-z0-9-]*:(?:"
    r"iam::(?P<iam_account>\d{12}):(?:root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)"
    r"|sts::(?P<sts_account>\d{12}):(?:assumed-role/[\w+=,.@-]+/[\w+=,.@-]+|federated-user/[\w+=,.@-]+)"
    r")"
)


def is_symmetric_encryption(key: KeyRecord) -> bool:
    return key.key_spec == "SYMMETRIC_DEFAULT" and key.key_usage == ENCRYPT_DECRYPT


def valid_operations(key: KeyRecord) -> frozenset[str]:
    """The grant operations that make sense for this key's spec and usage."""
    if is_symmetric_encryption(key):
        return frozenset(_EVERY_KEY + _SYMMETRIC)
    return frozenset(_EVERY_KEY + _BY_USAGE.get(key.key_usage, ()))


def check_operations(key: KeyRecord, operations: Iterable[str], arn: str) -> tuple[str, ...]:
    """The requested operations without repeats, in request order; ValidationException when one is not
    valid for the key (the model's Operations doc: "KMS returns a ValidationError exception")."""
    requested = tuple(dict.fromkeys(operations))
    if not requested:
        raise errors.ValidationException("Operations must contain at least one grant operation.")
    invalid = [op for op in requested if op not in valid_operations(key)]
    if invalid:
        # [unverified] wording; AWS documents only the exception type
        raise errors.ValidationException(
            f"Grant operations {', '.join(invalid)} are not valid for {arn}, which has KeySpec "
            f"{key.key_spec} and KeyUsage {key.key_usage}."
        )
    return requested


def check_constraints(key: KeyRecord, constraints: Mapping[str, Any] | None) -> str | None:
    """Validate a GrantConstraints structure for this key; return its canonical JSON (None if empty)."""
    if not constraints:
        return None
    present = {name: value for name, value in constraints.items() if value is not None}
    if EQUALS in present and SUBSET in present:
        # [unverified] AWS documents one of the two per grant; we refuse both rather than guess
        raise errors.ValidationException(
            "A grant constraint can contain EncryptionContextEquals or EncryptionContextSubset, not both."
        )
    for name in (EQUALS, SUBSET):
        context = present.get(name)
        if context is None:
            continue
        if not is_symmetric_encryption(key):
            raise errors.ValidationException(
                "Encryption context grant constraints are supported only on symmetric encryption KMS keys."
            )
        if len(context) > MAX_CONSTRAINT_PAIRS:
            raise errors.ValidationException(
                f"{name} can contain at most {MAX_CONSTRAINT_PAIRS} encryption context pairs."
            )
        if any(len(value) > MAX_CONSTRAINT_VALUE for value in context.values()):
            raise errors.ValidationException(
                f"Encryption context values in {name} cannot exceed {MAX_CONSTRAINT_VALUE} characters."
            )
    return canonical_constraints(present) if present else None


def canonical_constraints(constraints: Mapping[str, Any]) -> str:
    return json.dumps(constraints, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_constraints(text: str | None) -> dict[str, Any]:
    return {} if not text else dict(json.loads(text))


def check_principal(value: str) -> str:
    """An IAM principal ARN (account root, user, role, role session, federated user); InvalidArnException
    with AWS's wording otherwise. Returns the principal's account id."""
    match = _PRINCIPAL.fullmatch(value)
    if match is None:
        raise errors.InvalidArnException(f"ARN does not refer to a valid principal: {value}")
    return match.group("iam_account") or match.group("sts_account")


def principal_names(pattern: str, caller_arn: str) -> bool:
    """Does a grant's principal ``pattern`` name the caller? Exact ARN, or a role naming its sessions
    (``arn:P:iam::A:role/R`` names ``arn:P:sts::A:assumed-role/R/<session>``)."""
    if pattern == caller_arn:
        return True
    head, sep, role = pattern.partition(":role/")
    if not sep or ":iam::" not in head:
        return False
    partition_and_account = head.replace(":iam::", ":sts::", 1)
    role_name = role.rpartition("/")[2]  # role paths are not part of session ARNs
    return caller_arn.startswith(f"{partition_and_account}:assumed-role/{role_name}/")


def to_grant(record: GrantRecord, key_arn: str) -> Grant:
    """The evaluator's view of a stored grant."""
    constraints = parse_constraints(record.constraints)
    grantee = record.grantee_principal or record.grantee_service_principal or ""
    return Grant(
        grant_id=record.grant_id,
        key_arn=key_arn,
        grantee_principal=grantee,
        operations=frozenset(record.operations),
        issuing_account=record.issuing_account,
        retiring_principal=record.retiring_principal or record.retiring_service_principal,
        encryption_context_equals=constraints.get(EQUALS),
        encryption_context_subset=constraints.get(SUBSET),
        source_arn=constraints.get(SOURCE_ARN),
        name=record.name,
    )


def _lower_keys(context: Mapping[str, str]) -> dict[str, str]:
    # grant constraints compare context keys case-insensitively, values case-sensitively
    return {k.lower(): v for k, v in context.items()}


def _contains(outer: Mapping[str, str], inner: Mapping[str, str]) -> bool:
    big, small = _lower_keys(outer), _lower_keys(inner)
    return all(big.get(k) == v for k, v in small.items())


def derived_grant_allowed(
    parent: Grant,
    operations: Iterable[str],
    equals: Mapping[str, str] | None,
    subset: Mapping[str, str] | None,
) -> bool:
    """The grant-derived CreateGrant rule (section 6.8): when the caller may CreateGrant only because of
    ``parent``, the new grant's operations must be a subset of the parent's, and a parent constraint must
    be matched by an equal or stricter one (Equals is stricter than Subset). Call it with the grant named
    by ``Decision.grant_id``; deny (AccessDeniedException) when it returns False."""
    if not set(operations) <= parent.operations:
        return False
    if parent.encryption_context_equals is not None:
        # only the same exact context is as strict as an Equals constraint
        return (
            subset is None
            and equals is not None
            and (_lower_keys(equals) == _lower_keys(parent.encryption_context_equals))
        )
    if parent.encryption_context_subset is not None:
        required = parent.encryption_context_subset
        if equals is not None:
            return _contains(equals, required)
        return subset is not None and _contains(subset, required)
    return True
