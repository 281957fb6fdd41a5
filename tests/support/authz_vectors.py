"""Loading the decision tables of tests/vectors/authz (format: tests/vectors/authz/README.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openkms.authz.model import AccessRequest, Grant, Principal, PrincipalType

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "authz"
_ARN_ACCOUNT = re.compile(r"arn:[^:]+:[^:]+:[^:]*:(\d{12}):")


def principal(
    spec: dict[str, Any], identity_policies: Any = ..., policies: dict[str, Any] | None = None
) -> Principal:
    arn = spec["arn"]
    account = spec.get("account") or _ARN_ACCOUNT.match(arn).group(1)  # type: ignore[union-attr]
    if arn.endswith(":root"):
        kind = PrincipalType.ACCOUNT
    elif ":assumed-role/" in arn:
        kind = PrincipalType.ASSUMED_ROLE
    else:
        kind = PrincipalType.USER
    kind = PrincipalType(spec["type"]) if "type" in spec else kind
    principal_arn = spec.get("principal_arn")
    if principal_arn is None:
        if kind is PrincipalType.ASSUMED_ROLE:
            role = arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
            partition = arn.split(":", 2)[1]
            principal_arn = f"arn:{partition}:iam::{account}:role/{role}"
        else:
            principal_arn = arn
    docs = spec.get("identity_policies") if identity_policies is ... else identity_policies
    return Principal(
        arn=arn,
        account=account,
        type=kind,
        user_id=spec.get("user_id", "AIDA" + account),
        principal_arn=principal_arn,
        tags=dict(spec.get("tags", {})),
        identity_policies=None if docs is None else tuple(document(d, policies or {}) for d in docs),
    )


def document(value: Any, policies: dict[str, Any]) -> str:
    if isinstance(value, str) and value in policies:
        value = policies[value]
    if isinstance(value, str):
        return value
    if "Version" not in value:
        value = {"Version": "2012-10-17", **value}
    return json.dumps(value)


def request(table: dict[str, Any], case: dict[str, Any]) -> AccessRequest:
    case = {**table.get("defaults", {}), **case}
    policies = table.get("policies", {})
    spec = table["principals"][case["principal"]]
    if "identity_policies" in case:
        caller = principal(spec, case["identity_policies"], policies)
    else:
        caller = principal(spec, policies=policies)
    resource = case.get("resource", table.get("key"))
    if "resource_account" in case:
        resource_account = case["resource_account"]
    elif resource == "*":
        resource_account = caller.account
    else:
        resource_account = _ARN_ACCOUNT.match(resource).group(1)  # type: ignore[union-attr]
    if "condition" in case:
        key_policy: str | None = document(
            {
                "Statement": [
                    {
                        "Sid": "Cond",
                        "Effect": "Allow",
                        "Principal": {"AWS": caller.arn},
                        "Action": "kms:*",
                        "Resource": "*",
                        "Condition": case["condition"],
                    }
                ]
            },
            policies,
        )
    else:
        raw = case.get("key_policy")
        key_policy = None if raw is None else document(raw, policies)
    grants = tuple(
        Grant(
            grant_id=g["grant_id"],
            key_arn=g.get("key_arn", resource),
            grantee_principal=g["grantee_principal"],
            operations=frozenset(g["operations"]),
            issuing_account=g.get("issuing_account", resource_account),
            retiring_principal=g.get("retiring_principal"),
            encryption_context_equals=g.get("encryption_context_equals"),
            encryption_context_subset=g.get("encryption_context_subset"),
            source_arn=g.get("source_arn"),
        )
        for g in case.get("grants", [])
    )
    return AccessRequest(
        principal=caller,
        action=case["action"],
        resource=resource,
        resource_account=resource_account,
        key_policy=key_policy,
        grants=grants,
        condition_keys={k.lower(): v for k, v in case.get("condition_keys", {}).items()},
        encryption_context=case.get("encryption_context"),
        cross_account=case.get("cross_account", True),
    )


def tables() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(VECTORS.glob("*.json")):
        yield path.stem, json.loads(path.read_text())
