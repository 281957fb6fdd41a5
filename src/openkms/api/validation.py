"""Request bodies in, validated parameters out, with AWS's error codes and wording.

Two kinds of failure, in this order:

* ``SerializationException``: the body is not a JSON object, a member has the wrong JSON type, a blob is
  not standard padded base64 or a timestamp cannot be read. Raised at the first such problem.
* ``ValidationException``: the model's constraints (required, length, value range, enum, pattern).
  Every violation is collected and reported in one message, for example::

      2 validation errors detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member
      must have value less than or equal to 1024; Value at 'plaintext' failed to satisfy constraint: ...

  Members marked sensitive in the model (and blobs) are reported without their value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import orjson

from openkms import errors
from openkms.api.model import Violations, load_service_model, type_error

__all__ = ["format_violations", "operation_names", "parse_body", "validate"]


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode a request body; an empty body is ``{}``."""
    if not body or body.isspace():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.SerializationException("The request body is not valid JSON.") from None
    if type(document) is not dict:
        if type(document) is list:
            raise errors.SerializationException("Start of list found where not expected.")
        raise type_error(document, "a Structure")
    return document


def format_violations(violations: Violations) -> str:
    """``N validation error(s) detected: ...; ...`` in AWS wording."""
    count = len(violations)
    parts = [
        f"Value {shown} at '{path}' failed to satisfy constraint: {phrase}"
        if shown is not None
        else f"Value at '{path}' failed to satisfy constraint: {phrase}"
        for path, shown, phrase in violations
    ]
    return f"{count} validation error{'s' if count != 1 else ''} detected: " + "; ".join(parts)


def validate(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``params`` (a parsed body) against ``operation``'s input shape.

    Returns a new dict holding only modelled, non-null members, with blobs as ``bytes`` and timestamps
    as float epoch seconds; nested structures, lists and maps are converted the same way.
    """
    convert = _input_converters().get(operation)
    if convert is None:
        raise errors.UnknownOperationException(f"Unknown operation {operation!r}.")
    violations: Violations = []
    result: dict[str, Any] = convert(params, "", violations)
    if violations:
        raise errors.ValidationException(format_violations(violations))
    return result


@cache
def _input_converters() -> dict[str, Callable[[object, str, Violations], dict[str, Any]]]:
    return {name: op.input_shape.convert for name, op in load_service_model().operations.items()}


def operation_names() -> list[str]:
    """Every operation in the model, sorted."""
    return sorted(load_service_model().operations)
