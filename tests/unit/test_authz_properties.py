"""Properties of the evaluator over generated policies (issue #4): adding a Deny statement never grants
access, and removing an Allow statement never grants access -- in key policies and identity policies.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openkms.authz.evaluator import evaluate
from openkms.authz.model import AccessRequest, Grant, Principal, PrincipalType

A = "111122223333"
B = "444455556666"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY2 = f"arn:aws:kms:us-east-1:{A}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
ROLE = f"arn:aws:iam::{A}:role/Admin"
CAROL = f"arn:aws:iam::{A}:user/carol"
SESSION = f"arn:aws:sts::{A}:assumed-role/Admin/s1"
BOB = f"arn:aws:iam::{B}:user/bob"


def _principal(arn: str, account: str, kind: PrincipalType, principal_arn: str | None = None) -> Principal:
    return Principal(arn, account, kind, "AIDAEXAMPLE", principal_arn or arn, {"team": "blue"})


CALLERS = [
    _principal(f"arn:aws:iam::{A}:root", A, PrincipalType.ACCOUNT),
    _principal(CAROL, A, PrincipalType.USER),
    _principal(SESSION, A, PrincipalType.ASSUMED_ROLE, ROLE),
    _principal(f"arn:aws:iam::{B}:root", B, PrincipalType.ACCOUNT),
    _principal(BOB, B, PrincipalType.USER),
]

principals = st.sampled_from(
    [
        "*",
        {"AWS": "*"},
        {"AWS": A},
        {"AWS": f"arn:aws:iam::{A}:root"},
        {"AWS": B},
        {"AWS": CAROL},
        {"AWS": ROLE},
        {"AWS": SESSION},
        {"AWS": BOB},
        {"AWS": [CAROL, B]},
        {"Service": "ec2.amazonaws.com"},
    ]
)
actions = st.sampled_from(
    [
        "kms:*",
        "*",
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:Gen*",
        "kms:*crypt",
        "kms:ReEncrypt?rom",
        ["kms:Encrypt", "kms:Sign"],
    ]
)
resources = st.sampled_from(
    ["*", KEY, KEY2, f"arn:aws:kms:*:{A}:key/*", f"arn:aws:kms:*:{B}:key/*", [KEY, KEY2]]
)
conditions = st.sampled_from(
    [
        {"StringEquals": {"kms:EncryptionContext:app": "billing"}},
        {"StringNotEquals": {"kms:EncryptionContext:app": ["billing", "hr"]}},
        {"StringLike": {"kms:EncryptionContext:App": "bill*"}},
        {"StringEqualsIfExists": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}},
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["app", "env"]}},
        {"ForAllValues:StringLike": {"kms:EncryptionContextKeys": "a*"}},
        {"Null": {"kms:EncryptionContextKeys": "false"}},
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"Bool": {"aws:SecureTransport": "true"}},
        {
            "StringEquals": {"aws:PrincipalTag/team": "blue"},
            "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"},
        },
        {"StringEquals": {"kms:CallerAccount": A}},
        {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
    ]
)


@st.composite
def statements(draw: Any, *, key_policy: bool, effect: str | None = None) -> dict[str, Any]:
    # Mostly Allow, broad actions and resources: most generated requests should be allowed at first, or the
    # properties (which start from an allowed request) would rarely be exercised.
    statement: dict[str, Any] = {
        "Effect": effect or draw(st.sampled_from(["Allow", "Allow", "Allow", "Deny"]))
    }
    if key_policy:
        negate = statement["Effect"] == "Deny" and draw(st.booleans())
        statement["NotPrincipal" if negate else "Principal"] = draw(
            st.one_of(st.just({"AWS": A}), st.just("*"), principals)
        )
    statement["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = draw(
        st.one_of(st.just("kms:*"), actions)
    )
    statement["NotResource" if draw(st.integers(0, 5)) == 0 else "Resource"] = draw(
        st.one_of(st.just("*"), resources)
    )
    if draw(st.integers(0, 2)) == 0:
        statement["Condition"] = draw(conditions)
    return statement


def key_policies() -> Any:
    return st.lists(statements(key_policy=True), min_size=1, max_size=5)


def identity_policies() -> Any:
    return st.one_of(
        st.none(), st.lists(st.lists(statements(key_policy=False), min_size=1, max_size=3), max_size=2)
    )


requests = st.fixed_dictionaries(
    {
        "caller": st.sampled_from(CALLERS),
        "action": st.sampled_from(
            ["Encrypt", "Decrypt", "ReEncryptFrom", "GenerateDataKey", "Sign", "PutKeyPolicy"]
        ),
        "resource": st.sampled_from([KEY, KEY2]),
        "keys": st.fixed_dictionaries(
            {},
            optional={
                "kms:encryptioncontext:app": st.sampled_from(["billing", "hr", "web"]),
                "kms:encryptioncontextkeys": st.sampled_from([[], ["app"], ["app", "env"], ["zz"]]),
                "aws:sourceip": st.sampled_from(["10.1.2.3", "192.0.2.1"]),
                "aws:securetransport": st.booleans(),
                "kms:viaservice": st.just("ec2.us-east-1.amazonaws.com"),
            },
        ),
        "grants": st.lists(
            st.builds(
                lambda grantee, ops, subset: Grant(
                    "g" + grantee[-4:], KEY, grantee, frozenset(ops), A, encryption_context_subset=subset
                ),
                st.sampled_from([CAROL, ROLE, BOB, f"arn:aws:iam::{B}:root"]),
                st.sets(st.sampled_from(["Encrypt", "Decrypt", "GenerateDataKey"]), min_size=1),
                st.sampled_from([None, {"app": "billing"}]),
            ),
            max_size=2,
        ),
        "cross_account": st.sampled_from([True, True, True, False]),
    }
)


def _document(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _request(
    r: dict[str, Any], key_policy: list[dict[str, Any]], identity: list[list[dict[str, Any]]] | None
) -> AccessRequest:
    caller: Principal = r["caller"]
    if caller.type is not PrincipalType.ACCOUNT:
        caller = dataclasses.replace(
            caller, identity_policies=None if identity is None else tuple(_document(p) for p in identity)
        )
    context = (
        {"app": r["keys"]["kms:encryptioncontext:app"]} if "kms:encryptioncontext:app" in r["keys"] else {}
    )
    return AccessRequest(
        principal=caller,
        action=r["action"],
        resource=r["resource"],
        resource_account=A,
        key_policy=_document(key_policy),
        grants=tuple(r["grants"]),
        condition_keys=r["keys"],
        encryption_context=context,
        cross_account=r["cross_account"],
    )


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    r=requests,
    kp=key_policies(),
    ip=identity_policies(),
    extra=statements(key_policy=True, effect="Deny"),
    at=st.integers(0, 5),
)
def test_adding_a_key_policy_deny_never_grants(r: Any, kp: Any, ip: Any, extra: Any, at: int) -> None:
    before = evaluate(_request(r, kp, ip))
    after = evaluate(_request(r, [*kp[:at], extra, *kp[at:]], ip))
    assert before.allowed or not after.allowed
    if not after.allowed:
        assert after.denial is not None


@SETTINGS
@given(
    r=requests,
    kp=key_policies(),
    ip=identity_policies(),
    extra=statements(key_policy=False, effect="Deny"),
    which=st.integers(0, 2),
)
def test_adding_an_identity_deny_never_grants(r: Any, kp: Any, ip: Any, extra: Any, which: int) -> None:
    before = evaluate(_request(r, kp, ip))
    policies = [list(p) for p in ip or []]
    if which < len(policies):
        policies[which].append(extra)
    else:
        policies.append([extra])
    after = evaluate(_request(r, kp, policies))
    assert before.allowed or not after.allowed


@SETTINGS
@given(r=requests, kp=key_policies(), ip=identity_policies(), index=st.integers(0, 4))
def test_removing_a_key_policy_allow_never_grants(r: Any, kp: Any, ip: Any, index: int) -> None:
    allows = [i for i, s in enumerate(kp) if s["Effect"] == "Allow"]
    if not allows:
        return
    drop = allows[index % len(allows)]
    rest = [s for i, s in enumerate(kp) if i != drop]
    if not rest:  # a policy needs a statement: stand in one that can never apply
        rest = [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
    before = evaluate(_request(r, kp, ip))
    after = evaluate(_request(r, rest, ip))
    assert before.allowed or not after.allowed


@SETTINGS
@given(r=requests, kp=key_policies(), ip=identity_policies(), index=st.integers(0, 8))
def test_removing_an_identity_allow_never_grants(r: Any, kp: Any, ip: Any, index: int) -> None:
    if not ip:
        return
    places = [(p, i) for p, policy in enumerate(ip) for i, s in enumerate(policy) if s["Effect"] == "Allow"]
    if not places:
        return
    p, i = places[index % len(places)]
    policies = [list(policy) for policy in ip]
    del policies[p][i]
    policies = [policy for policy in policies if policy]
    before = evaluate(_request(r, kp, ip))
    after = evaluate(_request(r, kp, policies))
    assert before.allowed or not after.allowed


@SETTINGS
@given(r=requests, kp=key_policies(), ip=identity_policies())
def test_decisions_are_consistent(r: Any, kp: Any, ip: Any) -> None:
    request = _request(r, kp, ip)
    decision = evaluate(request)
    assert decision == evaluate(request)
    assert (decision.denial is None) is decision.allowed
    assert decision.reason
    if decision.grant_id is not None:
        assert decision.allowed and any(g.grant_id == decision.grant_id for g in request.grants)
