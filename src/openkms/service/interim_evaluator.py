"""A small stand-in for ``openkms.authz.evaluator`` used only until that module is merged.

It implements the algorithm of kms-semantics.md section 6.4 with the common condition operators
(String*, Bool, Numeric*, Null, IfExists, ForAnyValue/ForAllValues). An operator it does not know makes
its statement match for Deny and not match for Allow (fail closed). Delete this file when
``openkms.authz.evaluator`` exists: ``service.authorization`` prefers that one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson

from openkms.authz.model import AccessRequest, ConditionValue, Decision, Denial, Principal


@lru_cache(maxsize=4096)
def _statements(document: str) -> tuple[dict[str, Any], ...]:
    parsed = orjson.loads(document)
    raw = parsed.get("Statement", []) if isinstance(parsed, dict) else []
    items = [raw] if isinstance(raw, dict) else raw
    return tuple(s for s in items if isinstance(s, dict))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=4096)
def _glob(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), flags)


def _like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, re.IGNORECASE if ignore_case else 0).match(value) is not None


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    full = "kms:" + action
    if "Action" in statement:
        return any(_like(str(a), full, ignore_case=True) for a in _list(statement["Action"]))
    if "NotAction" in statement:
        return not any(_like(str(a), full, ignore_case=True) for a in _list(statement["NotAction"]))
    return False


def _resource_matches(statement: Mapping[str, Any], resource: str, key_policy: bool) -> bool:
    if "Resource" in statement:
        return any(
            r == "*" if key_policy else _like(str(r), resource) for r in _list(statement["Resource"])
        ) or any(str(r) == resource for r in _list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(_like(str(r), resource) for r in _list(statement["NotResource"]))
    return False


def _principal_kind(statement: Mapping[str, Any], p: Principal) -> str | None:
    """'direct', 'account' or None: how the statement's Principal names ``p``."""
    raw = statement.get("Principal")
    if raw is None:
        return None
    values = (
        ["*"] if raw == "*" else [str(v) for v in _list(raw.get("AWS", []))] if isinstance(raw, dict) else []
    )
    kind = None
    for value in values:
        if value == "*" or value == p.arn or value == p.principal_arn:
            return "direct"
        if value in (p.account, f"arn:{p.arn.split(':')[1]}:iam::{p.account}:root"):
            kind = "root" if p.arn == value else "account"
    return "direct" if kind == "root" else kind


def _as_strings(value: ConditionValue | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def _compare(base: str, wanted: str, actual: str) -> bool | None:
    if base in ("StringEquals", "ArnEquals"):
        return actual == wanted
    if base == "StringEqualsIgnoreCase":
        return actual.lower() == wanted.lower()
    if base in ("StringLike", "ArnLike"):
        return _like(wanted, actual)
    if base == "Bool":
        return actual.lower() == wanted.lower()
    if base.startswith("Numeric"):
        try:
            a, w = float(actual), float(wanted)
        except ValueError:
            return False
        return {
            "NumericEquals": a == w,
            "NumericLessThan": a < w,
            "NumericLessThanEquals": a <= w,
            "NumericGreaterThan": a > w,
            "NumericGreaterThanEquals": a >= w,
        }.get(base)
    return None


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _operator_holds(
    operator: str, name: str, wanted: Sequence[str], keys: Mapping[str, ConditionValue]
) -> bool | None:
    actual = _as_strings(keys.get(name.lower()))
    set_op = None
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if operator.startswith(prefix):
            set_op, operator = prefix, operator[len(prefix) :]
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    if operator == "Null":
        return (actual is None) == (wanted[0].lower() == "true")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if _compare(base, "x", "x") is None:
        return None
    if actual is None:
        return True if (if_exists or negated) and set_op is None else set_op == "ForAllValues:"

    def one(value: str) -> bool:
        hit = any(bool(_compare(base, w, value)) for w in wanted)
        return not hit if negated else hit

    if set_op == "ForAllValues:":
        return all(one(v) for v in actual)
    return any(one(v) for v in actual) if set_op or len(actual) == 1 else all(one(v) for v in actual)


def _conditions_hold(statement: Mapping[str, Any], keys: Mapping[str, ConditionValue], deny: bool) -> bool:
    block = statement.get("Condition") or {}
    for operator, entries in block.items():
        if not isinstance(entries, dict):
            return deny
        for name, wanted in entries.items():
            result = _operator_holds(
                operator,
                name,
                [str(w).lower() if isinstance(w, bool) else str(w) for w in _list(wanted)],
                keys,
            )
            if result is None:
                return deny
            if not result:
                return False
    return True


def _matches(
    statements: Sequence[Mapping[str, Any]], effect: str, request: AccessRequest, key_policy: bool
) -> list[tuple[int, Mapping[str, Any], str | None]]:
    found: list[tuple[int, Mapping[str, Any], str | None]] = []
    for index, statement in enumerate(statements, 1):
        if statement.get("Effect") != effect:
            continue
        kind = _principal_kind(statement, request.principal) if key_policy else "direct"
        if kind is None:
            continue
        if not _action_matches(statement, request.action):
            continue
        if not _resource_matches(statement, request.resource, key_policy):
            continue
        keys = request.condition_keys
        if key_policy and "kms:resourcealiases" in keys:  # identity policies only (section 6.5)
            keys = {k: v for k, v in keys.items() if k != "kms:resourcealiases"}
        if not _conditions_hold(statement, keys, deny=effect == "Deny"):
            continue
        found.append((index, statement, kind))
    return found


def _name(index: int, statement: Mapping[str, Any], where: str) -> str:
    sid = statement.get("Sid")
    return f'{where} statement "{sid}" (#{index})' if sid else f"{where} statement #{index}"


def evaluate(request: AccessRequest) -> Decision:
    p = request.principal
    same = p.account == request.resource_account
    if not same and not request.cross_account:
        return Decision(False, "the action is not available across accounts", Denial.NO_RESOURCE_ALLOW)
    kp = _statements(request.key_policy) if request.key_policy is not None else ()
    ip = tuple(s for doc in (p.identity_policies or ()) for s in _statements(doc))
    for index, statement, _ in _matches(kp, "Deny", request, True):
        return Decision(
            False, _name(index, statement, "key policy") + " denies", Denial.EXPLICIT_DENY_RESOURCE
        )
    for index, statement, _ in _matches(ip, "Deny", request, False):
        return Decision(
            False, _name(index, statement, "identity policy") + " denies", Denial.EXPLICIT_DENY_IDENTITY
        )
    if p.identity_policies is None:
        ip_allow: str | None = "identity policies not modelled (allow)" if same else "implicit identity allow"
    else:
        allows = _matches(ip, "Allow", request, False)
        ip_allow = _name(allows[0][0], allows[0][1], "identity policy") + " allows" if allows else None
    if p.type.value == "Account" and same:
        ip_allow = "account root (implicit identity allow)"
    if request.key_policy is None:
        if ip_allow is not None:
            return Decision(True, ip_allow)
        return Decision(False, "no identity policy allows", Denial.NO_IDENTITY_ALLOW)
    kp_allows = _matches(kp, "Allow", request, True)
    direct = next((m for m in kp_allows if m[2] == "direct"), None)
    account = next((m for m in kp_allows if m[2] == "account"), None)
    if same and direct is not None:
        return Decision(True, _name(direct[0], direct[1], "key policy") + " allows")
    path = direct or account
    if path is not None and ip_allow is not None:
        return Decision(True, f"{_name(path[0], path[1], 'key policy')} allows; {ip_allow}")
    if path is not None:
        return Decision(
            False,
            f"{_name(path[0], path[1], 'key policy')} allows but no identity policy allows",
            Denial.NO_IDENTITY_ALLOW,
        )
    return Decision(False, "no key policy statement allows", Denial.NO_RESOURCE_ALLOW)


def access_denied_message(request: AccessRequest, decision: Decision) -> str:
    denial = decision.denial or Denial.NO_RESOURCE_ALLOW
    head = (
        f"User: {request.principal.arn} is not authorized to perform: kms:{request.action} "
        f"on resource: {request.resource}"
    )
    if denial in (Denial.EXPLICIT_DENY_RESOURCE, Denial.EXPLICIT_DENY_IDENTITY):
        return f"{head} {denial.value}"
    return f"{head} because {denial.value} the kms:{request.action} action"
