"""The allow-lists of audit records, checked against botocore's KMS model."""

from __future__ import annotations

import botocore.session
import pytest

from openkms.audit.fields import (
    CLOUDTRAIL_REQUEST_MEMBERS,
    READ_ONLY_OPERATIONS,
    REQUEST_MEMBERS,
    TRACKED_OPERATIONS,
    java_date,
    request_parameters,
    response_elements,
)

MODEL = botocore.session.get_session().get_service_model("kms")
FORBIDDEN_SHAPES = {"GrantTokenList", "GrantTokenType"}


def _shape_is_secret(shape: object) -> bool:
    """A blob, a sensitive shape, or a structure/list/map containing one."""
    seen: set[str] = set()

    def walk(s: object) -> bool:
        name = getattr(s, "name", "")
        if name in seen:
            return False
        seen.add(name)
        if getattr(s, "type_name", "") == "blob" or getattr(s, "serialization", {}).get("sensitive"):
            return True
        if getattr(s, "metadata", {}).get("sensitive"):
            return True
        members = getattr(s, "members", None)
        if members:
            return any(walk(m) for m in members.values())
        for attr in ("member", "key", "value"):
            inner = getattr(s, attr, None)
            if inner is not None and walk(inner):
                return True
        return False

    return walk(shape)


@pytest.mark.parametrize("operation", sorted(REQUEST_MEMBERS))
def test_allow_listed_members_are_modelled_and_never_secret(operation: str) -> None:
    op = MODEL.operation_model(operation)
    members = op.input_shape.members if op.input_shape is not None else {}
    for name in REQUEST_MEMBERS[operation]:
        assert name in members, f"{operation}.{name} is not in the model"
        shape = members[name]
        assert shape.name not in FORBIDDEN_SHAPES, f"{operation}.{name} is a grant token"
        assert not _shape_is_secret(shape), f"{operation}.{name} is a blob or sensitive"


def test_every_model_operation_is_classified() -> None:
    for name in MODEL.operation_names:
        assert name in REQUEST_MEMBERS, f"{name} has no allow-list (its requestParameters would be null)"
    assert set(READ_ONLY_OPERATIONS) - {"LookupEvents", "GetCallerIdentity"} <= set(MODEL.operation_names)
    enum = set(MODEL.shape_for("KeyLastUsageTrackingOperation").enum)
    assert enum == TRACKED_OPERATIONS


def test_secret_members_never_copied() -> None:
    params = {
        "KeyId": "alias/app",
        "Plaintext": b"secret plaintext",
        "EncryptionContext": {"Department": "10", "Some-Key": "v"},
        "GrantTokens": ["token"],
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    out = request_parameters("Encrypt", params)
    assert out == {
        "keyId": "alias/app",
        "encryptionContext": {"Department": "10", "Some-Key": "v"},  # user keys verbatim
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    assert request_parameters("Decrypt", {"CiphertextBlob": b"x"}) == {
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT"
    }
    assert request_parameters(
        "Sign", {"KeyId": "k", "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}
    ) == {
        "keyId": "k",
        "signingAlgorithm": "ECDSA_SHA_256",
    }
    assert request_parameters("UnknownOperation", {"KeyId": "k"}) is None
    assert request_parameters("ListKeys", {}) is None


def test_nested_members_lower_camel_case() -> None:
    out = request_parameters(
        "CreateKey",
        {"Description": "d", "Tags": [{"TagKey": "k", "TagValue": "v"}], "KeySpec": "SYMMETRIC_DEFAULT"},
    )
    assert out == {
        "description": "d",
        "tags": [{"tagKey": "k", "tagValue": "v"}],
        "keySpec": "SYMMETRIC_DEFAULT",
    }
    lookup = request_parameters(
        "LookupEvents", {"MaxResults": 5, "NextToken": "t"}, CLOUDTRAIL_REQUEST_MEMBERS
    )
    assert lookup == {"maxResults": 5}


def test_response_elements() -> None:
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    created = response_elements(
        "CreateKey", {"KeyMetadata": {"AWSAccountId": "111122223333", "Arn": arn, "CreationDate": 0.0}}, [arn]
    )
    assert created == {
        "keyMetadata": {
            "aWSAccountId": "111122223333",
            "arn": arn,
            "creationDate": "Jan 1, 1970, 12:00:00 AM",
        }
    }
    scheduled = response_elements(
        "ScheduleKeyDeletion",
        {"KeyId": arn, "DeletionDate": 1618253910.0, "KeyState": "PendingDeletion", "PendingWindowInDays": 7},
        [arn],
    )
    assert scheduled == {
        "keyId": arn,
        "keyState": "PendingDeletion",
        "deletionDate": "Apr 12, 2021, 6:58:30 PM",
        "pendingWindowInDays": 7,
    }
    assert response_elements("DisableKey", {}, [arn]) == {"keyId": arn}
    assert response_elements("Encrypt", {"CiphertextBlob": b"x", "KeyId": arn}, [arn]) is None
    assert response_elements("GenerateDataKey", {"Plaintext": b"x"}, [arn]) is None


def test_java_date() -> None:
    assert java_date(1660171107.0) == "Aug 10, 2022, 10:38:27 PM"
    assert java_date(1641254392.0) == "Jan 3, 2022, 11:59:52 PM"
    assert java_date(1641256792.0) == "Jan 4, 2022, 12:39:52 AM"  # midnight hour is 12 AM
