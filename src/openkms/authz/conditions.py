"""The Condition element: operators compiled once per policy, evaluated per request (section 6.5).

Within a block, operators AND; within an operator, keys AND; the values listed for one key OR (for a
negated operator: the request value must match none of them). Key names are case-insensitive, including
the ``<k>`` of ``kms:EncryptionContext:<k>``: the request context stores them lower-cased.

Absent key: positive operators are false, negated ones true, ``...IfExists`` true, ``Null`` compares
presence; ``ForAnyValue:`` is false and ``ForAllValues:`` true on an absent or empty multi-valued key.
A single-valued operator on a multi-valued key is true when any request value matches (negated: none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from openkms import errors
from openkms.authz.context import KEY_POLICY_IGNORED, Context
from openkms.authz.matchers import Matcher, bad_value, compile_family, number_text, parse_bool

# operator -> (family, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ic", False),
    "StringNotEqualsIgnoreCase": ("string_ic", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "NumericEquals": ("numeric_eq", False),
    "NumericNotEquals": ("numeric_eq", True),
    "NumericLessThan": ("numeric_lt", False),
    "NumericLessThanEquals": ("numeric_le", False),
    "NumericGreaterThan": ("numeric_gt", False),
    "NumericGreaterThanEquals": ("numeric_ge", False),
    "DateEquals": ("date_eq", False),
    "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False),
    "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False),
    "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}
OPERATOR_NAMES = frozenset(_OPERATORS)

_NONE, _ANY, _ALL = 0, 1, 2
_OVERLY_PERMISSIVE = (
    "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued condition key "
    "matches requests without the specified {what} or with an unspecified {what}. "
    "To fix, remove ForAllValues."
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, key) pair of a Condition block, with its test compiled into ``holds``."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    key: str  # lower-cased
    holds: Callable[[Context], bool]


def compile_block(block: Any, *, key_policy: bool, variables: bool) -> tuple[Condition, ...]:
    """Validate and compile a statement's Condition element."""
    if not isinstance(block, dict):
        raise errors.MalformedPolicyDocumentException("The Condition element must be a JSON object.")
    out: list[Condition] = []
    for operator, entries in block.items():
        set_op, base, if_exists = _split_operator(operator)
        family, negated = _OPERATORS[base]
        if not isinstance(entries, dict) or not entries:
            raise errors.MalformedPolicyDocumentException(
                f"The condition operator {operator} must map condition keys to values."
            )
        for key, raw in entries.items():
            if not key:
                raise errors.MalformedPolicyDocumentException("A policy condition key must not be empty.")
            name = key.lower()
            if key_policy and set_op == _ALL:
                _check_not_overly_permissive(name)
            values = _values(operator, raw)
            # Identity-policy-only keys are absent when a key policy is evaluated (section 6.5).
            ignored = key_policy and name in KEY_POLICY_IGNORED
            if family == "null":
                expect = parse_bool(operator, values[0]) if len(values) == 1 else None
                if expect is None:
                    raise bad_value(operator, raw)
                holds = _constant(expect) if ignored else _null_test(name, expect)
            else:
                matcher = compile_family(family, operator, values, variables)
                absent = if_exists or set_op == _ALL or (set_op == _NONE and negated)
                holds = _constant(absent) if ignored else _test(name, set_op, negated, absent, matcher)
            out.append(Condition(operator, name, holds))
    return tuple(out)


def _constant(result: bool) -> Callable[[Context], bool]:
    return lambda _ctx: result


def _null_test(name: str, expect_absent: bool) -> Callable[[Context], bool]:
    def holds(ctx: Context) -> bool:
        value = ctx.get(name)
        if value is None:
            return expect_absent
        cls = value.__class__
        if cls is str or cls is bool or cls is int or cls is float:
            return not expect_absent
        return (not value) == expect_absent  # an empty multi-valued key counts as absent

    return holds


def _test(name: str, set_op: int, negated: bool, absent: bool, match: Matcher) -> Callable[[Context], bool]:
    """The condition's test, specialised once so a request pays for no option it does not use."""

    def holds(ctx: Context) -> bool:
        value = ctx.get(name)
        if value is None:
            return absent
        cls = value.__class__
        if cls is str or cls is bool or cls is int or cls is float:
            return match(value, ctx) is not negated
        items = cast("Sequence[Any]", value)
        if not items:  # an empty multi-valued key counts as absent
            return absent
        if set_op == _ALL:
            return all(match(item, ctx) is not negated for item in items)
        if set_op == _ANY:
            return any(match(item, ctx) is not negated for item in items)
        # A single-valued operator on a multi-valued key: any value matching counts as a match.
        return any(match(item, ctx) for item in items) is not negated

    return holds


def _split_operator(operator: str) -> tuple[int, str, bool]:
    set_op = _NONE
    base = operator
    if base.startswith("ForAnyValue:"):
        set_op, base = _ANY, base[len("ForAnyValue:") :]
    elif base.startswith("ForAllValues:"):
        set_op, base = _ALL, base[len("ForAllValues:") :]
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    if base not in _OPERATORS or (if_exists and base == "Null"):
        raise errors.MalformedPolicyDocumentException(
            f"Policy contains an unknown condition operator: {operator}."
        )
    return set_op, base, if_exists


def _check_not_overly_permissive(name: str) -> None:
    if name.startswith("kms:encryptioncontext:"):
        raise errors.MalformedPolicyDocumentException(_OVERLY_PERMISSIVE.format(what="encryption context"))
    if name.startswith("aws:requesttag/"):
        raise errors.MalformedPolicyDocumentException(_OVERLY_PERMISSIVE.format(what="tag"))


def _values(operator: str, raw: Any) -> list[str]:
    """The policy values of one key as strings (JSON numbers and booleans are accepted, as in IAM)."""
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(number_text(item))
        else:
            raise bad_value(operator, raw)
    return out
