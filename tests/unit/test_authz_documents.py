"""Policy document validation (kms-semantics.md 6.2): bad input gets the AWS error, good input passes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openkms import errors
from openkms.authz.documents import (
    check_identity_policy,
    check_key_policy,
    compile_key_policy,
    policy_principals,
)
from openkms.service.policy_documents import default_policy

A = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."


def key_policy(**statement: Any) -> str:
    base: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": A}, "Action": "kms:*", "Resource": "*"}
    base.update(statement)
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{k: v for k, v in base.items() if v is not None}]}
    )


def identity_policy(**statement: Any) -> str:
    base: dict[str, Any] = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    base.update(statement)
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{k: v for k, v in base.items() if v is not None}]}
    )


def malformed(document: str, message: str | None = None, *, identity: bool = False) -> str:
    check = check_identity_policy if identity else check_key_policy
    with pytest.raises(errors.KMSError) as info:
        check(document)
    assert info.value.code == "MalformedPolicyDocumentException"
    assert info.value.status == 400
    assert info.value.message
    if message is not None:
        assert info.value.message == message
    return info.value.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "The policy is not valid JSON."),
        ("", "The policy is not valid JSON."),
        ('{"Statement": [', "The policy is not valid JSON."),
        ("[1, 2]", "The policy must be a JSON object."),
        ("null", "The policy must be a JSON object."),
        ('"text"', "The policy must be a JSON object."),
        ("{}", "The policy must contain at least one Statement."),
        ('{"Statement": []}', "The policy must contain at least one Statement."),
        ('{"Statement": "x"}', "The policy must contain at least one Statement."),
        ('{"Statement": [1]}', "Each policy statement must be a JSON object."),
        ('{"Statement": [null]}', "Each policy statement must be a JSON object."),
        (
            '{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}]}',
            "Each policy statement needs Effect Allow or Deny.",
        ),
        (
            '{"Statement": [{"Effect": "allow", "Principal": "*"}]}',
            "Each policy statement needs Effect Allow or Deny.",
        ),
        (
            '{"Statement": [{"Effect": true, "Principal": "*"}]}',
            "Each policy statement needs Effect Allow or Deny.",
        ),
        (
            '{"Statement": [{"Principal": "*", "Action": "kms:*"}]}',
            "Each policy statement needs Effect Allow or Deny.",
        ),
        (
            '{"Version": "2012-10-18", "Statement": [{"Effect": "Allow", "Principal": "*"}]}',
            "The policy Version must be 2012-10-17 or 2008-10-17.",
        ),
        (
            '{"Version": 2012, "Statement": [{"Effect": "Allow", "Principal": "*"}]}',
            "The policy Version must be 2012-10-17 or 2008-10-17.",
        ),
        (
            '{"Id": 5, "Statement": [{"Effect": "Allow", "Principal": "*"}]}',
            "The policy Id must be a string.",
        ),
        (
            '{"Statement": [{"Effect": "Allow", "Principal": "*"}], "Condition": {}}',
            "The policy contains an unsupported element: Condition.",
        ),
        (
            '{"Statement": [{"Effect": "Allow", "Principal": "*", "Actions": "kms:*"}]}',
            "The policy statement contains an unsupported element: Actions.",
        ),
        (
            '{"Statement": [{"Sid": 7, "Effect": "Allow", "Principal": "*"}]}',
            "The Sid of a policy statement must be a string.",
        ),
    ],
)
def test_structure(document: str, message: str) -> None:
    malformed(document, message)


def test_missing_principal_in_key_policy() -> None:
    malformed(
        key_policy(Principal=None),
        "Policy contains a statement with no principal. A key policy statement must name a Principal.",
    )


def test_principal_and_not_principal() -> None:
    malformed(
        key_policy(NotPrincipal={"AWS": A}), "A policy statement cannot have both Principal and NotPrincipal."
    )


@pytest.mark.parametrize(
    "principal",
    [
        "alice",
        "",
        {},
        [],
        5,
        {"AWS": "alice"},
        {"AWS": "12345"},
        {"AWS": "1111222233334"},
        {"AWS": "arn:aws:iam::123:user/x"},
        {"AWS": f"arn:aws:iam::{A}:user/*"},
        {"AWS": f"arn:aws:iam::{A}:role/Admin*"},
        {"AWS": f"arn:aws:iam::{A}:group/admins"},
        {"AWS": f"arn:aws:iam::{A}:root/x"},
        {"AWS": f"arn:aws:sts::{A}:assumed-role/Admin"},
        {"AWS": f"arn:aws:iam:us-east-1:{A}:user/x"},
        {"AWS": f"arn:aws:kms:us-east-1:{A}:key/x"},
        {"AWS": []},
        {"AWS": [A, 5]},
        {"AWS": 111122223333},
        {"AWS": {"x": "y"}},
        {"Foo": "bar"},
        {"aws": A},
        {"Service": "not a service"},
        {"Service": "*"},
        {"Federated": ""},
    ],
)
def test_invalid_principals(principal: Any) -> None:
    malformed(key_policy(Principal=principal), INVALID_PRINCIPALS)


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        {"AWS": "*"},
        {"AWS": A},
        {"AWS": f"arn:aws:iam::{A}:root"},
        {"AWS": f"arn:aws:iam::{A}:user/alice"},
        {"AWS": f"arn:aws:iam::{A}:user/division/team/alice.b+c=d,e@f_g-h"},
        {"AWS": f"arn:aws:iam::{A}:role/Admin"},
        {"AWS": f"arn:aws:iam::{A}:role/service-role/Admin"},
        {"AWS": f"arn:aws:sts::{A}:assumed-role/Admin/session-1"},
        {"AWS": f"arn:aws-cn:iam::{A}:root"},
        {"AWS": f"arn:aws-us-gov:iam::{A}:user/x"},
        {"AWS": [A, f"arn:aws:iam::{A}:user/alice", "444455556666"]},
        {"Service": "ec2.amazonaws.com"},
        {"Service": ["s3.amazonaws.com", "logs.us-east-1.amazonaws.com"]},
        {"Federated": "cognito-identity.amazonaws.com"},
        {"AWS": A, "Service": "ec2.amazonaws.com"},
    ],
)
def test_valid_principals(principal: Any) -> None:
    check_key_policy(key_policy(Principal=principal))
    check_key_policy(key_policy(Principal=None, NotPrincipal=principal, Effect="Deny"))


def test_identity_policy_rejects_principals() -> None:
    for element in ("Principal", "NotPrincipal"):
        malformed(
            identity_policy(**{element: {"AWS": A}}),
            "Policy document should not specify a principal.",
            identity=True,
        )


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (5, "The Action element must be a non-empty string or a list of non-empty strings."),
        ({"kms": "*"}, "The Action element must be a non-empty string or a list of non-empty strings."),
        ([], "The Action element must be a non-empty string or a list of non-empty strings."),
        (["kms:Encrypt", 5], "The Action element must be a non-empty string or a list of non-empty strings."),
        ("", "The Action element must be a non-empty string or a list of non-empty strings."),
        ("Encrypt", "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        ("kms:Encrypt:x", "Actions/Condition can contain only one colon."),
        ("kms:", "Policy contains an invalid action: kms:."),
        (":Encrypt", "Policy contains an invalid action: :Encrypt."),
        ("kms:En crypt", "Policy contains an invalid action: kms:En crypt."),
    ],
)
def test_bad_actions(action: Any, message: str) -> None:
    malformed(key_policy(Action=action), message)
    malformed(identity_policy(Action=action), message, identity=True)


def test_bad_not_action_and_resources() -> None:
    malformed(
        key_policy(Action=None, NotAction=7),
        "The NotAction element must be a non-empty string or a list of non-empty strings.",
    )
    malformed(
        key_policy(Resource=["*", None]),
        "The Resource element must be a non-empty string or a list of non-empty strings.",
    )
    malformed(
        key_policy(Resource=None, NotResource={}),
        "The NotResource element must be a non-empty string or a list of non-empty strings.",
    )
    malformed(
        key_policy(NotAction="kms:Decrypt"), "A policy statement cannot have both Action and NotAction."
    )
    malformed(key_policy(NotResource="*"), "A policy statement cannot have both Resource and NotResource.")


def test_missing_action_or_resource() -> None:
    # A key policy statement without Action or Resource is accepted and has no effect (model CreateKey doc);
    # IAM rejects such identity-policy statements with its own wording.
    check_key_policy(key_policy(Action=None))
    check_key_policy(key_policy(Resource=None))
    malformed(identity_policy(Action=None), "Policy statement must contain actions.", identity=True)
    malformed(identity_policy(Resource=None), "Policy statement must contain resources.", identity=True)


def test_identity_sids() -> None:
    message = (
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression "
        "[0-9A-Za-z]*"
    )
    malformed(identity_policy(Sid="Allow use"), message, identity=True)
    check_key_policy(key_policy(Sid="Allow use of the key"))  # key policy Sids may contain spaces
    duplicate = json.dumps(
        {"Statement": [{"Sid": "A", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}] * 2}
    )
    malformed(duplicate, "Statement IDs (SID) in a single policy must be unique.", identity=True)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("x", "The Condition element must be a JSON object."),
        ([], "The Condition element must be a JSON object."),
        (
            {"StringEqual": {"kms:CallerAccount": A}},
            "Policy contains an unknown condition operator: StringEqual.",
        ),
        (
            {"stringequals": {"kms:CallerAccount": A}},
            "Policy contains an unknown condition operator: stringequals.",
        ),
        (
            {"NullIfExists": {"kms:ViaService": "true"}},
            "Policy contains an unknown condition operator: NullIfExists.",
        ),
        (
            {"IfExists": {"kms:ViaService": "true"}},
            "Policy contains an unknown condition operator: IfExists.",
        ),
        (
            {"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}},
            "Policy contains an unknown condition operator: ForSomeValues:StringEquals.",
        ),
        ({"StringEquals": "x"}, "The condition operator StringEquals must map condition keys to values."),
        ({"StringEquals": {}}, "The condition operator StringEquals must map condition keys to values."),
        ({"StringEquals": {"": "x"}}, "A policy condition key must not be empty."),
    ],
)
def test_bad_conditions(condition: Any, message: str) -> None:
    malformed(key_policy(Condition=condition), message)
    malformed(identity_policy(Condition=condition), message, identity=True)


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("StringEquals", {"nested": "object"}),
        ("StringEquals", [["nested"]]),
        ("StringEquals", None),
        ("NumericEquals", "ten"),
        ("NumericLessThan", "NaN"),
        ("NumericLessThan", "inf"),
        ("DateLessThan", "yesterday"),
        ("DateGreaterThan", "2026-13-01T00:00:00Z"),
        ("Bool", "yes"),
        ("Bool", 1),
        ("BinaryEquals", "not base64!"),
        ("IpAddress", "10.0.0.0/33"),
        ("NotIpAddress", "host.example.com"),
        ("Null", "maybe"),
        ("Null", ["true", "false"]),
    ],
)
def test_bad_condition_values(operator: str, value: Any) -> None:
    message = malformed(key_policy(Condition={operator: {"custom:key": value}}))
    assert message.startswith(f"Policy contains an invalid value for condition operator {operator}")


def test_for_all_values_with_single_valued_keys() -> None:
    context = malformed(
        key_policy(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:Department": "IT"}}),
    )
    assert context == (
        "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
        "matches requests without the specified encryption context or with an unspecified encryption "
        "context. To fix, remove ForAllValues."
    )
    tag = malformed(key_policy(Condition={"ForAllValues:StringLike": {"AWS:RequestTag/Project": "*"}}))
    assert tag == (
        "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
        "matches requests without the specified tag or with an unspecified tag. To fix, remove ForAllValues."
    )
    # Multi-valued keys, ForAnyValue, and IAM identity policies (not validated by KMS) are accepted.
    check_key_policy(key_policy(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "a"}}))
    check_key_policy(key_policy(Condition={"ForAnyValue:StringEquals": {"kms:EncryptionContext:a": "b"}}))
    check_identity_policy(
        identity_policy(Condition={"ForAllValues:StringEquals": {"kms:EncryptionContext:a": "b"}})
    )


def test_every_operator_is_accepted() -> None:
    values = {
        "String": "x",
        "Numeric": "1",
        "Date": "2026-01-01T00:00:00Z",
        "Bool": "true",
        "Binary": "QUJD",
        "IpAddress": "10.0.0.0/8",
        "NotIpAddress": "::1",
        "Arn": "arn:aws:iam::*:user/*",
        "Null": "true",
    }
    operators = [
        *(
            f"String{s}"
            for s in ("Equals", "NotEquals", "EqualsIgnoreCase", "NotEqualsIgnoreCase", "Like", "NotLike")
        ),
        *(
            f"Numeric{s}"
            for s in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")
        ),
        *(
            f"Date{s}"
            for s in ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")
        ),
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        *(f"Arn{s}" for s in ("Equals", "Like", "NotEquals", "NotLike")),
    ]
    block: dict[str, Any] = {"Null": {"kms:ViaService": "true"}}
    for operator in operators:
        value = next(v for prefix, v in values.items() if operator.startswith(prefix))
        for prefix in ("", "ForAnyValue:", "ForAllValues:"):
            block[f"{prefix}{operator}"] = {"custom:key": value}
            block[f"{prefix}{operator}IfExists"] = {"custom:key": [value, value]}
    check_key_policy(key_policy(Condition=block))
    assert len(compile_key_policy(key_policy(Condition=block)).statements[0].conditions) == len(block)


def test_size_limit() -> None:
    padding = "x" * (32768 - len(key_policy(Sid="")))
    exact = key_policy(Sid=padding)
    assert len(exact.encode()) == 32768
    check_key_policy(exact)
    with pytest.raises(errors.KMSError) as info:
        check_key_policy(key_policy(Sid=padding + "x"))
    assert info.value.code == "LimitExceededException"
    assert info.value.message == "Policy exceeds the maximum size of 32768 bytes."
    # The limit counts UTF-8 bytes, not characters.
    with pytest.raises(errors.KMSError) as info:
        check_key_policy(key_policy(Sid="é" * 16400))
    assert info.value.code == "LimitExceededException"
    with pytest.raises(errors.KMSError) as info:
        check_identity_policy(identity_policy(Sid="a" * 33000))
    assert info.value.code == "LimitExceededException"


def test_good_documents() -> None:
    check_key_policy(default_policy("aws", A))
    check_key_policy(default_policy("aws-cn", A))
    check_key_policy(
        '{"Statement": {"Effect": "Deny", "Principal": "*", "NotAction": "kms:Decrypt", "NotResource": "*"}}'
    )
    check_key_policy(key_policy(Resource=[KEY, "arn:aws:kms:*:111122223333:key/*"]))
    check_key_policy(
        json.dumps(
            {"Version": "2008-10-17", "Id": "x", "Statement": [json.loads(key_policy())["Statement"][0]]}
        )
    )
    check_identity_policy(identity_policy(Action=["kms:Encrypt", "kms:Decrypt"], Resource=KEY, Sid="UseKey1"))
    check_identity_policy(identity_policy(Action="*"))


def test_compiled_policies_are_cached() -> None:
    document = key_policy(Sid="cached")
    assert compile_key_policy(document) is compile_key_policy(document)


def test_policy_principals() -> None:
    document = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": [A, "*"], "Service": "ec2.amazonaws.com"},
                    "Action": "kms:*",
                },
                {"Effect": "Deny", "NotPrincipal": {"AWS": f"arn:aws:iam::{A}:user/x"}, "Action": "kms:*"},
                {"Effect": "Allow", "Principal": "*", "Action": "kms:*"},
                {"Effect": "Allow", "Principal": {"AWS": A}, "Action": "kms:*"},
            ]
        }
    )
    assert policy_principals(document) == [A, f"arn:aws:iam::{A}:user/x"]
