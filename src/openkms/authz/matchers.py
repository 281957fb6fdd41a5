"""Compiled value tests of the condition operators: "does one request value match any policy value?"

One factory per operator family (String, StringIgnoreCase, Like, Arn, Numeric, Date, Bool, Binary, IP).
Policy values are parsed once here (a value that does not parse is MalformedPolicyDocument); request
values are converted per call and never raise (a value of the wrong kind simply does not match).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import math
from collections.abc import Callable, Sequence
from typing import Any

from openkms import errors
from openkms.authz.context import Context
from openkms.authz.globs import compile_glob, glob_match, has_wildcard
from openkms.authz.variables import Template, parse_template

# A compiled "does this one request value match any of the policy's values?" test.
Matcher = Callable[[Any, Context], bool]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def number_text(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def bad_value(operator: str, raw: Any) -> errors.KMSError:
    return errors.MalformedPolicyDocumentException(
        f"Policy contains an invalid value for condition operator {operator}: {raw!r}."
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return str(value)


def compile_family(family: str, operator: str, values: list[str], variables: bool) -> Matcher:
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
        return lambda value, _ctx: (value if value.__class__ is str else _as_text(value)) in static

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
    globs = [compile_glob(v) for v in values if isinstance(v, str) and has_wildcard(v)]
    templates = [v for v in values if isinstance(v, Template)]

    def match(value: Any, ctx: Context) -> bool:
        text = value if value.__class__ is str else _as_text(value)
        if text in exact:
            return True
        for glob in globs:
            if glob.match(text) is not None:
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
            if text == "*":
                return True
            wanted = text.split(":", 5)
            if len(wanted) != 6:  # not an ARN pattern: matches nothing
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
        raise bad_value(operator, text) from None
    if not math.isfinite(number):
        raise bad_value(operator, text)
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
        raise bad_value(operator, text)
    return epoch


def _request_date(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return date_to_epoch(value) if isinstance(value, str) else None


def parse_bool(operator: str, text: str) -> bool | None:
    lowered = text.lower()
    return True if lowered == "true" else False if lowered == "false" else None


def _parse_bool_strict(operator: str, text: str) -> str:
    if parse_bool(operator, text) is None:
        raise bad_value(operator, text)
    return text.lower()


def _request_bool(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _parse_base64(operator: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_value(operator, text) from None


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
        raise bad_value(operator, text) from None


def _in_networks(value: Any, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in network for network in networks)
