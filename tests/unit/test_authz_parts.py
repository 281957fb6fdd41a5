"""The parts of openkms.authz below the evaluator: globs, principals, context keys, grants, messages."""

from __future__ import annotations

import datetime
import json

import pytest

from openkms.authz.context import Context
from openkms.authz.globs import glob_match
from openkms.authz.grants import constraints_hold
from openkms.authz.lockout import LOCKOUT_MESSAGE, locks_out
from openkms.authz.messages import access_denied_message
from openkms.authz.model import AccessRequest, Decision, Denial, Grant, Principal, PrincipalType
from openkms.authz.principals import account_of_principal, is_valid_aws_principal

A = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
USER = Principal(
    f"arn:aws:iam::{A}:user/ops/alice", A, PrincipalType.USER, "AIDAALICE", f"arn:aws:iam::{A}:user/ops/alice"
)
ROOT = Principal(f"arn:aws:iam::{A}:root", A, PrincipalType.ACCOUNT, A, f"arn:aws:iam::{A}:root")
SESSION = Principal(
    f"arn:aws:sts::{A}:assumed-role/Admin/s1",
    A,
    PrincipalType.ASSUMED_ROLE,
    "AROAADMIN:s1",
    f"arn:aws:iam::{A}:role/Admin",
    tags={"Team": "blue"},
)


@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "expected"),
    [
        ("kms:Re.crypt", "kms:Rexcrypt", False, False),  # regex metacharacters are literal
        ("kms:Re.crypt", "kms:Re.crypt", False, True),
        ("a+b", "aab", False, False),
        ("(x)|y", "(x)|y", False, True),
        ("kms:*", "KMS:Encrypt", True, True),
        ("kms:*", "KMS:Encrypt", False, False),
        ("a*b*c", "abc", False, True),
        ("a*b*c", "a-b-x", False, False),
        ("a?", "a\n", False, True),  # ? is any one character, newline included
        ("*", "", False, True),
        ("", "", False, True),
        ("?", "", False, False),
    ],
)
def test_glob(pattern: str, value: str, ignore_case: bool, expected: bool) -> None:
    assert glob_match(pattern, value, ignore_case=ignore_case) is expected


def test_account_forms() -> None:
    assert account_of_principal(A) == A
    assert account_of_principal(f"arn:aws:iam::{A}:root") == A
    assert account_of_principal(f"arn:aws-cn:iam::{A}:root") == A
    assert account_of_principal(f"arn:aws:iam::{A}:user/root") is None
    assert account_of_principal("12345678901") is None
    assert is_valid_aws_principal(f"arn:aws:sts::{A}:assumed-role/Admin/s1")
    assert not is_valid_aws_principal(f"arn:aws:sts::{A}:federated-user/bob")


def test_context_derives_principal_keys() -> None:
    ctx = Context(AccessRequest(SESSION, "Encrypt", KEY, A))
    assert ctx.get("aws:principalarn") == f"arn:aws:iam::{A}:role/Admin"
    assert ctx.get("aws:principalaccount") == A
    assert ctx.get("kms:calleraccount") == A
    assert ctx.get("aws:principaltype") == "AssumedRole"
    assert ctx.get("aws:userid") == "AROAADMIN:s1"
    assert ctx.get("aws:username") is None  # only IAM users have one
    assert ctx.get("aws:principaltag/team") == "blue"
    assert ctx.get("aws:principaltag/other") is None
    assert ctx.get("kms:viaservice") is None
    assert Context(AccessRequest(USER, "Encrypt", KEY, A)).get("aws:username") == "alice"
    assert Context(AccessRequest(ROOT, "Encrypt", KEY, A)).get("aws:principaltype") == "Account"
    # Supplied keys win over derived ones.
    supplied = AccessRequest(USER, "Encrypt", KEY, A, condition_keys={"kms:calleraccount": "999999999999"})
    assert Context(supplied).get("kms:calleraccount") == "999999999999"


def test_context_current_time_defaults_to_now() -> None:
    ctx = Context(AccessRequest(USER, "Encrypt", KEY, A))
    now = ctx.get("aws:currenttime")
    assert isinstance(now, str)
    parsed = datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert abs((datetime.datetime.now(datetime.UTC) - parsed).total_seconds()) < 5
    epoch = ctx.get("aws:epochtime")
    assert isinstance(epoch, int)
    assert abs(epoch - datetime.datetime.now(datetime.UTC).timestamp()) < 5


def _grant(**constraints: object) -> Grant:
    return Grant("g", KEY, USER.arn, frozenset({"Decrypt", "DescribeKey"}), A, **constraints)  # type: ignore[arg-type]


def test_grant_constraints() -> None:
    equals = _grant(encryption_context_equals={"App": "x"})
    assert constraints_hold(equals, "Decrypt", {"APP": "x"})
    assert not constraints_hold(equals, "Decrypt", {"App": "X"})
    assert not constraints_hold(equals, "Decrypt", None)
    assert constraints_hold(equals, "DescribeKey", None)  # no context: the constraint does not apply
    assert constraints_hold(_grant(), "Decrypt", None)
    assert not constraints_hold(_grant(source_arn="arn:aws:s3:::b"), "DescribeKey", None)


@pytest.mark.parametrize(
    ("denial", "tail"),
    [
        (Denial.NO_RESOURCE_ALLOW, "because no resource-based policy allows the kms:Decrypt action"),
        (Denial.NO_IDENTITY_ALLOW, "because no identity-based policy allows the kms:Decrypt action"),
        (Denial.EXPLICIT_DENY_RESOURCE, "with an explicit deny in a resource-based policy"),
        (Denial.EXPLICIT_DENY_IDENTITY, "with an explicit deny in an identity-based policy"),
    ],
)
def test_access_denied_messages(denial: Denial, tail: str) -> None:
    request = AccessRequest(SESSION, "Decrypt", KEY, A)
    assert access_denied_message(request, Decision(False, "x", denial)) == (
        f"User: arn:aws:sts::{A}:assumed-role/Admin/s1 is not authorized to perform: kms:Decrypt "
        f"on resource: {KEY} {tail}"
    )


def test_access_denied_message_for_account_level_actions() -> None:
    request = AccessRequest(USER, "CreateKey", "*", A)
    assert access_denied_message(request, Decision(False, "x", Denial.NO_IDENTITY_ALLOW)) == (
        f"User: arn:aws:iam::{A}:user/ops/alice is not authorized to perform: kms:CreateKey on resource: * "
        "because no identity-based policy allows the kms:CreateKey action"
    )


def test_lockout_supplies_policy_name_and_leaves_the_request_alone() -> None:
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": USER.arn},
                    "Action": "kms:PutKeyPolicy",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:PolicyName": "default"},
                        "Bool": {"kms:BypassPolicyLockoutSafetyCheck": "false"},
                    },
                }
            ]
        }
    )
    keys: dict[str, object] = {}
    request = AccessRequest(USER, "PutKeyPolicy", KEY, A, policy, condition_keys=keys)  # type: ignore[arg-type]
    assert not locks_out(request)
    assert keys == {}
    # The action checked is always PutKeyPolicy, whatever the request says.
    assert not locks_out(AccessRequest(USER, "CreateKey", KEY, A, policy))
    assert LOCKOUT_MESSAGE == "The new key policy will not allow you to update the key policy in the future."
