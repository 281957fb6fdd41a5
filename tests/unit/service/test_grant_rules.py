"""The pure grant rules: operations per key type, principals, constraints, grant-derived CreateGrant."""

from __future__ import annotations

from dataclasses import replace

import pytest

from openkms import errors
from openkms.authz.model import Grant
from openkms.service.grant_rules import (
    check_constraints,
    check_operations,
    check_principal,
    derived_grant_allowed,
    principal_names,
    to_grant,
    valid_operations,
)
from openkms.storage.base import GrantRecord, KeyRecord, KeyState

SYM = KeyRecord(
    account="111122223333",
    region="us-east-1",
    key_id="k",
    created_at=0.0,
    description="",
    key_spec="SYMMETRIC_DEFAULT",
    key_usage="ENCRYPT_DECRYPT",
    origin="AWS_KMS",
    key_manager="CUSTOMER",
    state=KeyState.ENABLED,
    policy="{}",
)
ARN = "arn:aws:kms:us-east-1:111122223333:key/k"


def key(spec: str, usage: str) -> KeyRecord:
    return replace(SYM, key_spec=spec, key_usage=usage)


def test_valid_operations_per_key_type() -> None:
    common = {"CreateGrant", "RetireGrant", "DescribeKey"}
    assert valid_operations(SYM) == common | {
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
    }
    rsa = key("RSA_2048", "ENCRYPT_DECRYPT")
    assert valid_operations(rsa) == common | {
        "Encrypt",
        "Decrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GetPublicKey",
    }
    assert valid_operations(key("ECC_NIST_P256", "SIGN_VERIFY")) == common | {
        "Sign",
        "Verify",
        "GetPublicKey",
    }
    assert valid_operations(key("HMAC_256", "GENERATE_VERIFY_MAC")) == common | {"GenerateMac", "VerifyMac"}
    assert valid_operations(key("ECC_NIST_P256", "KEY_AGREEMENT")) == common | {
        "DeriveSharedSecret",
        "GetPublicKey",
    }
    assert valid_operations(key("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")) == common | {
        "Encapsulate",
        "Decapsulate",
        "GetPublicKey",
    }
    assert check_operations(SYM, ["Decrypt", "Encrypt", "Decrypt"], ARN) == ("Decrypt", "Encrypt")
    with pytest.raises(errors.ValidationException, match="Sign"):
        check_operations(SYM, ["Encrypt", "Sign"], ARN)
    with pytest.raises(errors.ValidationException):
        check_operations(SYM, [], ARN)


@pytest.mark.parametrize(
    ("value", "account"),
    [
        ("arn:aws:iam::111122223333:root", "111122223333"),
        ("arn:aws:iam::111122223333:user/alice", "111122223333"),
        ("arn:aws:iam::111122223333:user/path/to/alice", "111122223333"),
        ("arn:aws:iam::111122223333:role/app", "111122223333"),
        ("arn:aws:sts::444455556666:assumed-role/app/session-1", "444455556666"),
        ("arn:aws:sts::444455556666:federated-user/bob", "444455556666"),
        ("arn:aws-cn:iam::111122223333:user/alice", "111122223333"),
    ],
)
def test_valid_principals(value: str, account: str) -> None:
    assert check_principal(value) == account


@pytest.mark.parametrize(
    "value",
    [
        "alice",
        "111122223333",
        "arn:aws:iam::11112222333:user/alice",
        "arn:aws:iam::111122223333:group/admins",
        "arn:aws:iam::111122223333:user/",
        "arn:aws:s3:::bucket",
        "arn:aws:sts::111122223333:assumed-role/app",
        "*",
    ],
)
def test_invalid_principals(value: str) -> None:
    with pytest.raises(errors.InvalidArnException) as e:
        check_principal(value)
    assert e.value.message == f"ARN does not refer to a valid principal: {value}"


def test_principal_names_roles_and_their_sessions() -> None:
    role = "arn:aws:iam::111122223333:role/app"
    assert principal_names(role, role)
    assert principal_names(role, "arn:aws:sts::111122223333:assumed-role/app/s1")
    assert principal_names(
        "arn:aws:iam::111122223333:role/team/app", "arn:aws:sts::111122223333:assumed-role/app/s"
    )
    assert not principal_names(role, "arn:aws:sts::111122223333:assumed-role/app2/s1")
    assert not principal_names(role, "arn:aws:sts::444455556666:assumed-role/app/s1")
    assert not principal_names("arn:aws:iam::111122223333:user/a", "arn:aws:iam::111122223333:user/ab")
    assert not principal_names("arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/a")


def test_constraints() -> None:
    assert check_constraints(SYM, None) is None
    assert check_constraints(SYM, {}) is None
    text = check_constraints(SYM, {"EncryptionContextSubset": {"b": "2", "a": "1"}})
    assert text == '{"EncryptionContextSubset":{"a":"1","b":"2"}}'
    with pytest.raises(errors.ValidationException):
        check_constraints(SYM, {"EncryptionContextSubset": {"a": "1"}, "EncryptionContextEquals": {"a": "1"}})
    with pytest.raises(errors.ValidationException):
        check_constraints(key("HMAC_256", "GENERATE_VERIFY_MAC"), {"EncryptionContextEquals": {"a": "1"}})
    with pytest.raises(errors.ValidationException):
        check_constraints(SYM, {"EncryptionContextEquals": {str(i): "v" for i in range(9)}})
    with pytest.raises(errors.ValidationException):
        check_constraints(SYM, {"EncryptionContextEquals": {"a": "v" * 385}})
    # SourceArn is valid for every key type
    assert check_constraints(key("RSA_2048", "SIGN_VERIFY"), {"SourceArn": "arn:aws:s3:::b"}) is not None


def test_to_grant() -> None:
    record = GrantRecord(
        grant_id="ab" * 32,
        account="111122223333",
        region="us-east-1",
        key_id="k",
        name="n",
        created_at=1.0,
        issuing_account="111122223333",
        operations=("Encrypt", "Decrypt"),
        grantee_principal="arn:aws:iam::111122223333:user/a",
        retiring_principal="arn:aws:iam::111122223333:user/b",
        constraints='{"EncryptionContextEquals":{"a":"1"}}',
    )
    grant = to_grant(record, ARN)
    assert grant == Grant(
        grant_id="ab" * 32,
        key_arn=ARN,
        grantee_principal="arn:aws:iam::111122223333:user/a",
        operations=frozenset({"Encrypt", "Decrypt"}),
        issuing_account="111122223333",
        retiring_principal="arn:aws:iam::111122223333:user/b",
        encryption_context_equals={"a": "1"},
        encryption_context_subset=None,
        name="n",
    )


def parent(**kw: object) -> Grant:
    base = Grant(
        "g", ARN, "arn:aws:iam::111122223333:user/a", frozenset({"Encrypt", "CreateGrant"}), "111122223333"
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_derived_grant_operations_must_be_a_subset() -> None:
    assert derived_grant_allowed(parent(), ["Encrypt"], None, None)
    assert derived_grant_allowed(parent(), ["Encrypt", "CreateGrant"], None, None)
    assert not derived_grant_allowed(parent(), ["Decrypt"], None, None)
    assert derived_grant_allowed(parent(), ["Encrypt"], {"a": "1"}, None)  # adding a constraint is stricter


def test_derived_grant_constraints_equal_or_stricter() -> None:
    subset = parent(encryption_context_subset={"App": "x"})
    assert not derived_grant_allowed(subset, ["Encrypt"], None, None)
    assert derived_grant_allowed(subset, ["Encrypt"], None, {"app": "x"})  # keys compare case-insensitively
    assert derived_grant_allowed(subset, ["Encrypt"], None, {"App": "x", "more": "y"})
    assert derived_grant_allowed(subset, ["Encrypt"], {"App": "x", "more": "y"}, None)  # Equals is stricter
    assert not derived_grant_allowed(subset, ["Encrypt"], None, {"App": "X"})  # values are case-sensitive
    assert not derived_grant_allowed(subset, ["Encrypt"], {"other": "1"}, None)
    equals = parent(encryption_context_equals={"App": "x"})
    assert derived_grant_allowed(equals, ["Encrypt"], {"APP": "x"}, None)
    assert not derived_grant_allowed(equals, ["Encrypt"], None, {"App": "x"})
    assert not derived_grant_allowed(equals, ["Encrypt"], {"App": "x", "more": "y"}, None)
    assert not derived_grant_allowed(equals, ["Encrypt"], None, None)
