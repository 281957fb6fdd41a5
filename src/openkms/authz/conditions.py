"""The Condition element: operators compiled once per policy, evaluated per request (section 6.5).

Within a block, operators AND; within an operator, keys AND; the values listed for one key OR (for a
negated operator: the request value must match none of them). Key names are case-insensitive, including
the ``<k>`` of ``kms:EncryptionContext:<k>``: the request context stores them lower-cased.

Absent key: positive operators are false, negated ones true, ``...IfExists`` true, ``Null`` compares
presence; ``ForAnyValue:`` is false and ``ForAllValues:`` true on an absent or empty multi-valued key.
A single-valued operator on a multi-valued key is true when any request value matches (negated: none).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openkms import errors
from openkms.authz.context import Context
from openkms.authz.globs import glob_match, has_wildcard
from openkms.authz.variables import Template, parse_template

# A compiled "does this one request value match any of the policy's values?" test.
Matcher = Callable[[Any, Context], bool]

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
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, key) pair of a Condition block."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    key: str  # lower-cased
    set_op: int
    if_exists: bool
    negated: bool
    null: bool | None  # the expected absence for Null, else None
    match: Matcher

    def holds(self, ctx: Context, key_policy: bool) -> bool:
        value = ctx.get(self.key, key_policy=key_policy)
        if value is not None and not isinstance(value, str | bool | int | float) and not value:
            value = None  # an empty multi-valued key counts as absent
        if self.null is not None:
            return (value is None) == self.null
        if value is None:
            if self.if_exists:
                return True
            if self.set_op == _ANY:
                return False
            if self.set_op == _ALL:
                return True
            return self.negated
        if isinstance(value, str | bool | int | float):
            return self.match(value, ctx) != self.negated
        if self.set_op == _ALL:
            return all(self.match(item, ctx) != self.negated for item in value)
        if self.set_op == _ANY:
            return any(self.match(item, ctx) != self.negated for item in value)
        return any(self.match(item, ctx) for item in value) != self.negated


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
            if family == "null":
                expect = _parse_bool(operator, values[0]) if len(values) == 1 else None
                if expect is None:
                    raise _bad_value(operator, raw)
                out.append(Condition(operator, name, _NONE, False, False, expect, _never))
                continue
            matcher = _compile_family(family, operator, values, variables)
            out.append(Condition(operator, name, set_op, if_exists, negated, None, matcher))
    return tuple(out)


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
            out.append(_number_text(item))
        else:
            raise _bad_value(operator, raw)
    return out


def _number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _bad_value(operator: str, raw: Any) -> errors.KMSError:
    return errors.MalformedPolicyDocumentException(
        f"Policy contains an invalid value for condition operator {operator}: {raw!r}."
    )


def _never(_value: Any, _ctx: Context) -> bool:
    return False


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    return str(value)


def _compile_family(family: str, operator: str, values: list[str], variables: bool) -> Matcher:
    if family in ("string", "string_ic", "like", "arn"):
        parsed = [parse_template(v) if variables else v for v in values]
        if family == "string":
            return _string_equals(parsed)
        if family == "string_ic":
            return _string_equals_ic(parsed)
        if family == "like":
            return _string_like(parsed)
        return _arn_like(parsed)
    if family.startswith("numeric_"):
        numbers = [_parse_number(operator, v) for v in values]
        return _ordered(_COMPARE[family[8:]], numbers, _request_number)
    if family.startswith("date_"):
        dates = [_parse_date(operator, v) for v in values]
        return _ordered(_COMPARE[family[5:]], dates, _request_date)
    if family == "bool":
        wanted = frozenset(_parse_bool_strict(operator, v) for v in values)
        return lambda value, _ctx: _request_bool(value) in wanted
    if family == "binary":
        blobs = frozenset(_parse_base64(operator, v) for v in values)
        return lambda value, _ctx: _request_bytes(value) in blobs
    networks = [_parse_network(operator, v) for v in values]
    return lambda value, _ctx: _in_networks(value, networks)


def _string_equals(values: Sequence[str | Template]) -> Matcher:
    static = frozenset(v for v in values if isinstance(v, str))
    templates = [v for v in values if isinstance(v, Template)]
    if not templates:
        return lambda value, _ctx: (value if isinstance(value, str) else _as_text(value)) in static

    def match(value: Any, ctx: Context) -> bool:
        text = value if isinstance(value, str) else _as_text(value)
        return text in static or any(t.resolve(ctx) == text for t in templates)

    return match


def _string_equals_ic(values: Sequence[str | Template]) -> Matcher:
    static = frozenset(v.casefold() for v in values if isinstance(v, str))
    templates = [v for v in values if isinstance(v, Template)]

    def match(value: Any, ctx: Context) -> bool:
        text = _as_text(value).casefold()
        if text in static:
            return True
        for template in templates:
            resolved = template.resolve(ctx)
            if resolved is not None and resolved.casefold() == text:
                return True
        return False

    return match


def _string_like(values: Sequence[str | Template]) -> Matcher:
    exact = frozenset(v for v in values if isinstance(v, str) and not has_wildcard(v))
    globs = [v for v in values if isinstance(v, str) and has_wildcard(v)]
    templates = [v for v in values if isinstance(v, Template)]

    def match(value: Any, ctx: Context) -> bool:
        text = value if isinstance(value, str) else _as_text(value)
        if text in exact or any(glob_match(g, text) for g in globs):
            return True
        return any(t.glob_match(text, ctx) for t in templates)

    return match


def _arn_like(values: Sequence[str | Template]) -> Matcher:
    # ArnEquals and ArnLike are the same test in IAM: each of the six colon-separated parts is matched on
    # its own (case-sensitive, with * and ? wildcards), so "*" cannot run across a colon boundary.
    def match(value: Any, ctx: Context) -> bool:
        if not isinstance(value, str):
            return False
        parts = value.split(":", 5)
        if len(parts) != 6:
            return False
        for pattern in values:
            text = pattern.resolve(ctx) if isinstance(pattern, Template) else pattern
            if text is None:
                continue
            wanted = text.split(":", 5)
            if len(wanted) != 6:
                if glob_match(text, value):
                    return True
                continue
            if all(glob_match(w, p) for w, p in zip(wanted, parts, strict=True)):
                return True
        return False

    return match


def _ordered(
    compare: Callable[[float, float], bool], bounds: list[float], convert: Callable[[Any], float | None]
) -> Matcher:
    def match(value: Any, _ctx: Context) -> bool:
        number = convert(value)
        return number is not None and any(compare(number, bound) for bound in bounds)

    return match


def _parse_number(operator: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _bad_value(operator, text) from None
    if not math.isfinite(number):
        raise _bad_value(operator, text)
    return number


def _request_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def date_to_epoch(text: str) -> float | None:
    """ISO-8601 (``2025-01-31``, ``2025-01-31T12:00:00Z``, with offsets or fractions) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _parse_date(operator: str, text: str) -> float:
    epoch = date_to_epoch(text)
    if epoch is None:
        raise _bad_value(operator, text)
    return epoch


def _request_date(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return date_to_epoch(value) if isinstance(value, str) else None


def _parse_bool(operator: str, text: str) -> bool | None:
    lowered = text.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _parse_bool_strict(operator: str, text: str) -> str:
    if _parse_bool(operator, text) is None:
        raise _bad_value(operator, text)
    return text.lower()


def _request_bool(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _parse_base64(operator: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_value(operator, text) from None


def _request_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_network(operator: str, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _bad_value(operator, text) from None


def _in_networks(value: Any, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in network for network in networks)
