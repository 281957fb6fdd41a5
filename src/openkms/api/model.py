"""The KMS service model, read from botocore's ``kms/<version>/service-2.json`` at run time.

Nothing here is retyped by hand: the operation list, every member, type, required flag, length/value
bound, enum and pattern comes from the model that the installed botocore ships, so an upgrade that adds
an operation or a member shows up here without code changes.

Each operation's input shape is compiled once into a small tree of nodes (``StructureNode``,
``ListNode``, ``MapNode`` and the scalar nodes). ``node.convert(value, path, violations)`` checks the
JSON type (a mismatch raises ``SerializationException`` at once), converts wire encodings (base64 blobs
to ``bytes``, timestamps to float epoch seconds), drops ``null`` and unknown members, and appends every
constraint violation to ``violations`` so that ``api.validation`` can report them all in one
``ValidationException`` in AWS wording.
"""

from __future__ import annotations

import binascii
import gzip
import importlib.resources
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import MappingProxyType
from typing import Any

from openkms import errors
from openkms.clock import is_datetime_epoch

SERVICE_NAME = "kms"

# (member path, the value as shown between "Value " and " at" -- "'1025'" or "null" -- or None when it
# must not be shown, constraint phrase)
Violation = tuple[str, str | None, str]
Violations = list[Violation]

_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


# --------------------------------------------------------------------------- wire type errors


def _token(value: object) -> str:
    if isinstance(value, bool):
        return "BOOLEAN_VALUE"
    if isinstance(value, int | float):
        return "NUMBER_VALUE"
    if isinstance(value, str):
        return "STRING_VALUE"
    return "NULL_VALUE" if value is None else "VALUE"


def type_error(value: object, target: str) -> errors.KMSError:
    """The SerializationException AWS JSON services answer for a member of the wrong JSON type."""
    if isinstance(value, dict):
        return errors.SerializationException("Start of structure or map found where not expected.")
    if isinstance(value, list):
        return errors.SerializationException("Start of list found where not expected.")
    return errors.SerializationException(f"{_token(value)} can not be converted to {target}")


def java_str(value: object) -> str:
    """Render a converted value the way Java's ``toString`` would (``[a, b]``, ``{k=v}``, ``true``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_str(v)}" for k, v in value.items()) + "}"
    return str(value)


# --------------------------------------------------------------------------- nodes


class Node:
    """One compiled shape. ``omit_value``: the value never appears in a message (sensitive or binary)."""

    __slots__ = ("constrained", "omit_value", "sensitive", "shape_name")

    leaf = True

    def __init__(self, shape_name: str, sensitive: bool) -> None:
        self.shape_name = shape_name
        self.sensitive = sensitive
        self.omit_value = sensitive
        self.constrained = False  # whether phrases() can ever return something

    def coerce(self, value: object, path: str) -> Any:
        """Check the JSON type and convert the wire encoding; no constraint checks."""
        raise NotImplementedError

    def phrases(self, value: Any) -> list[str]:
        """Constraint phrases the converted value violates (empty when valid)."""
        return []

    def convert(self, value: object, path: str, out: Violations) -> Any:
        converted = self.coerce(value, path)
        if self.constrained:
            found = self.phrases(converted)
            if found:
                rendered = self.render(converted)
                out.extend((path, rendered, phrase) for phrase in found)
        return converted

    def render(self, value: Any) -> str | None:
        return None if self.omit_value else f"'{java_str(value)}'"


def _length_phrases(n: int, lo: int, hi: int, word: str = "length") -> list[str]:
    found = []
    if n > hi:
        found.append(f"Member must have {word} less than or equal to {hi}")
    if n < lo:
        found.append(f"Member must have {word} greater than or equal to {lo}")
    return found


class StringNode(Node):
    __slots__ = ("enum", "enum_set", "max_len", "min_len", "pattern", "pattern_text")

    def __init__(self, shape_name: str, sensitive: bool, shape: Mapping[str, Any], regexes: _Regexes) -> None:
        super().__init__(shape_name, sensitive)
        self.min_len: int = shape.get("min", 0)
        self.max_len: int = shape.get("max", 2**63)
        self.enum: tuple[str, ...] | None = tuple(shape["enum"]) if "enum" in shape else None
        self.enum_set = frozenset(self.enum) if self.enum is not None else None
        self.pattern_text: str | None = shape.get("pattern")
        self.pattern = regexes.compile(shape_name, self.pattern_text) if self.pattern_text else None
        self.constrained = bool(self.min_len > 0 or self.max_len < 2**63 or self.enum or self.pattern)

    def coerce(self, value: object, path: str) -> str:
        if type(value) is str:
            return value
        raise type_error(value, "a String")

    def convert(self, value: object, path: str, out: Violations) -> str:
        # Fast path inlined: this runs for nearly every member of every request.
        if type(value) is not str:
            raise type_error(value, "a String")
        if (
            not self.min_len <= len(value) <= self.max_len
            or (self.enum_set is not None and value not in self.enum_set)
            or (self.pattern is not None and self.pattern(value) is None)
        ):
            render = self.render(value)
            out.extend((path, render, phrase) for phrase in self.phrases(value))
        return value

    def phrases(self, value: str) -> list[str]:
        found = _length_phrases(len(value), self.min_len, self.max_len)
        if self.pattern is not None and self.pattern(value) is None:
            found.append(f"Member must satisfy regular expression pattern: {self.pattern_text}")
        if self.enum is not None and self.enum_set is not None and value not in self.enum_set:
            found.append(f"Member must satisfy enum value set: [{', '.join(self.enum)}]")
        return found


class BlobNode(Node):
    """Standard base64 with padding on the wire; lengths apply to the decoded bytes."""

    __slots__ = ("max_len", "min_len")

    def __init__(self, shape_name: str, sensitive: bool, shape: Mapping[str, Any]) -> None:
        super().__init__(shape_name, sensitive)
        self.omit_value = True  # AWS shows "Value at 'ciphertextBlob' ..." for blobs
        self.min_len: int = shape.get("min", 0)
        self.max_len: int = shape.get("max", 2**63)
        self.constrained = bool(self.min_len > 0 or self.max_len < 2**63)

    def coerce(self, value: object, path: str) -> bytes:
        if type(value) is not str:
            raise type_error(value, "a Blob")
        try:
            return binascii.a2b_base64(value, strict_mode=True)
        except ValueError:  # binascii.Error, or a non-ASCII string
            raise errors.SerializationException(
                f"Value at '{path}' is not valid base64 (standard alphabet, with padding)."
            ) from None

    def convert(self, value: object, path: str, out: Violations) -> bytes:
        data = self.coerce(value, path)
        if not self.min_len <= len(data) <= self.max_len:
            out.extend((path, None, p) for p in self.phrases(data))
        return data

    def phrases(self, value: bytes) -> list[str]:
        return _length_phrases(len(value), self.min_len, self.max_len)


class IntegerNode(Node):
    """``integer`` (Java int) and ``long``; an out-of-range number cannot be deserialized at all."""

    __slots__ = ("hi", "lo", "max_value", "min_value", "target")

    def __init__(self, shape_name: str, sensitive: bool, shape: Mapping[str, Any]) -> None:
        super().__init__(shape_name, sensitive)
        self.lo, self.hi = _INT_RANGE[shape["type"]]
        self.min_value: int = shape.get("min", self.lo)
        self.max_value: int = shape.get("max", self.hi)
        self.target = "an Integer" if shape["type"] == "integer" else "a Long"
        self.constrained = self.min_value > self.lo or self.max_value < self.hi

    def coerce(self, value: object, path: str) -> int:
        if type(value) is int:
            number = value
        elif type(value) is float and value.is_integer():
            number = int(value)
        else:
            raise type_error(value, self.target)
        if not self.lo <= number <= self.hi:
            raise type_error(value, self.target)
        return number

    def phrases(self, value: int) -> list[str]:
        return _length_phrases(value, self.min_value, self.max_value, "value")


class BooleanNode(Node):
    __slots__ = ()

    def coerce(self, value: object, path: str) -> bool:
        if type(value) is bool:
            return value
        raise type_error(value, "a Boolean")

    def convert(self, value: object, path: str, out: Violations) -> bool:
        if type(value) is bool:
            return value
        raise type_error(value, "a Boolean")


class TimestampNode(Node):
    """Epoch seconds as a JSON number (int or float); ISO-8601 strings are accepted leniently."""

    __slots__ = ()

    def coerce(self, value: object, path: str) -> float:
        if type(value) is int or type(value) is float:
            epoch = float(value)
        elif type(value) is str:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise _bad_timestamp(path) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            epoch = parsed.timestamp()
        else:
            raise type_error(value, "a Timestamp")
        # Everything downstream (key-material expiry, the audit record's dates) turns the value back into
        # a datetime; one outside years 1-9999 cannot be, so it is unreadable here rather than a 500 later.
        if not is_datetime_epoch(epoch):
            raise _bad_timestamp(path)
        return epoch


def _bad_timestamp(path: str) -> errors.KMSError:
    return errors.SerializationException(
        f"Value at '{path}' is not a valid timestamp (epoch seconds or ISO-8601)."
    )


class StructureNode(Node):
    """``members``: (wire name, lowerCamel path segment, node, required), in model order."""

    __slots__ = ("_table", "members")

    leaf = False

    def __init__(self, shape_name: str, sensitive: bool) -> None:
        super().__init__(shape_name, sensitive)
        self.members: tuple[tuple[str, str, Node, bool], ...] = ()
        self._table: tuple[tuple[str, str, Callable[[object, str, Violations], Any], bool, bool], ...] = ()

    def set_members(self, members: tuple[tuple[str, str, Node, bool], ...]) -> None:
        self.members = members
        # Bound methods resolved once: this loop runs for every member of every request.
        self._table = tuple((n, seg, node.convert, req, node.sensitive) for n, seg, node, req in members)

    def coerce(self, value: object, path: str) -> dict[str, Any]:
        return self.convert(value, path, [])

    def convert(self, value: object, path: str, out: Violations) -> dict[str, Any]:
        if type(value) is not dict:
            raise type_error(value, "a Structure")
        result: dict[str, Any] = {}
        prefix = path + "." if path else ""
        for name, segment, convert, required, sensitive in self._table:
            item = value.get(name)
            if item is None:  # absent or JSON null
                if required:
                    out.append((prefix + segment, None if sensitive else "null", "Member must not be null"))
                continue
            result[name] = convert(item, prefix + segment if prefix else segment, out)
        return result


def _null_element(path: str) -> errors.KMSError:
    return errors.SerializationException(f"Null elements are not allowed in '{path}'.")


class ListNode(Node):
    __slots__ = ("max_len", "member", "min_len")

    leaf = False

    def __init__(self, shape_name: str, sensitive: bool, shape: Mapping[str, Any], member: Node) -> None:
        super().__init__(shape_name, sensitive or member.sensitive)
        self.omit_value = self.sensitive or member.omit_value
        self.member = member
        self.min_len: int = shape.get("min", 0)
        self.max_len: int = shape.get("max", 2**63)

    def coerce(self, value: object, path: str) -> list[Any]:
        return self.convert(value, path, [])

    def convert(self, value: object, path: str, out: Violations) -> list[Any]:
        if type(value) is not list:
            raise type_error(value, "a List")
        member = self.member
        if None in value:
            raise _null_element(path)
        if member.leaf:
            items = [member.coerce(v, path) for v in value]
            found: dict[str, None] = {}  # an ordered set of phrases
            if member.constrained:
                for item in items:
                    found.update(dict.fromkeys(member.phrases(item)))
            if found:
                phrase = f"Member must satisfy constraint: [{', '.join(found)}]"
                out.append((path, self.render(items), phrase))
        else:
            items = [member.convert(v, f"{path}.{i}.member", out) for i, v in enumerate(value, 1)]
        if not self.min_len <= len(items) <= self.max_len:
            rendered = self.render(items)
            out.extend((path, rendered, p) for p in _length_phrases(len(items), self.min_len, self.max_len))
        return items


class MapNode(Node):
    __slots__ = ("key", "max_len", "min_len", "plain", "value")

    leaf = False

    def __init__(self, name: str, sensitive: bool, shape: Mapping[str, Any], key: Node, value: Node) -> None:
        super().__init__(name, sensitive or key.sensitive or value.sensitive)
        self.omit_value = self.sensitive or key.omit_value or value.omit_value
        self.key = key
        self.value = value
        self.min_len: int = shape.get("min", 0)
        self.max_len: int = shape.get("max", 2**63)
        self.plain = (
            type(key) is StringNode
            and type(value) is StringNode
            and not (key.constrained or value.constrained or self.min_len > 0 or self.max_len < 2**63)
        )

    def coerce(self, value: object, path: str) -> dict[str, Any]:
        return self.convert(value, path, [])

    def convert(self, value: object, path: str, out: Violations) -> dict[str, Any]:
        if type(value) is not dict:
            raise type_error(value, "a Map")
        key_node, value_node = self.key, self.value
        if self.plain:  # string -> string without constraints (EncryptionContext): type checks only
            for v in value.values():
                if type(v) is not str:
                    raise _null_element(path) if v is None else type_error(v, "a String")
            return dict(value)
        result: dict[str, Any] = {}
        key_found: dict[str, None] = {}
        value_found: dict[str, None] = {}
        for k, v in value.items():
            if v is None:
                raise _null_element(path)
            key = key_node.coerce(k, path)
            if key_node.constrained:
                key_found.update(dict.fromkeys(key_node.phrases(key)))
            if value_node.leaf:
                item = value_node.coerce(v, path)
                if value_node.constrained:
                    value_found.update(dict.fromkeys(value_node.phrases(item)))
            else:
                item = value_node.convert(v, f"{path}.{k}", out)
            result[key] = item
        if key_found or value_found or not self.min_len <= len(result) <= self.max_len:
            rendered = self.render(result)
            if key_found:
                out.append((path, rendered, f"Map keys must satisfy constraint: [{', '.join(key_found)}]"))
            if value_found:
                out.append((path, rendered, f"Map value must satisfy constraint: [{', '.join(value_found)}]"))
            out.extend((path, rendered, p) for p in _length_phrases(len(result), self.min_len, self.max_len))
        return result


# --------------------------------------------------------------------------- Java regex -> Python re

_POSIX = {  # Java's \p{...} POSIX classes are US-ASCII only (no UNICODE_CHARACTER_CLASS flag)
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}
_JAVA_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"  # Java's '.' excludes every line terminator, not only \n


class UnsupportedPatternError(ValueError):
    """A Java regex construct with no faithful ``re`` equivalent."""


def java_regex_to_python(pattern: str) -> str:
    r"""Translate a model (Java ``java.util.regex``) pattern for ``re`` compiled with ``re.ASCII``.

    ``re.ASCII`` gives ``\w``, ``\d``, ``\s`` and ``\b`` their Java (ASCII) meaning. Handled here:
    ``.``, ``\p{Posix}``/``\P{Posix}``, ``\z``, ``\Z``, ``\e`` and ``(?<name>``. Class unions and
    intersections, ``\Q..\E``, Unicode properties and the like raise ``UnsupportedPatternError``.
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise UnsupportedPatternError("trailing backslash")
            e = pattern[i + 1]
            i += 2
            if e in "pP":
                m = re.match(r"\{(\w+)\}", pattern[i:])
                name = m.group(1) if m else ""
                if name.startswith("Is"):
                    name = name[2:]
                if not m or name not in _POSIX or (e == "P" and in_class):
                    raise UnsupportedPatternError(f"\\{e}{pattern[i : i + 12]}")
                i += m.end()
                body = _POSIX[name]
                out.append(body if in_class else f"[{'^' if e == 'P' else ''}{body}]")
            elif e == "z":
                out.append("\\Z")
            elif e == "Z":
                out.append("(?=\\n?\\Z)")
            elif e == "e":
                out.append("\\x1b")
            elif e in "QEGRXhHvVkc0" or (e == "x" and pattern[i : i + 1] == "{"):
                raise UnsupportedPatternError(f"\\{e}")
            else:
                out.append(c + e)
            continue
        if in_class:
            if c == "[" or pattern.startswith("&&", i):
                raise UnsupportedPatternError("character class union or intersection")
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
        elif c == ".":
            c = _JAVA_DOT
        elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4].isalpha():
            c = "(?P"
        out.append(c)
        i += 1
    if in_class:
        raise UnsupportedPatternError("unterminated character class")
    return "".join(out)


class _Regexes:
    """Compiles each distinct pattern once; records shapes whose pattern cannot be enforced."""

    def __init__(self) -> None:
        self.compiled: dict[str, Callable[[str], re.Match[str] | None]] = {}
        self.unenforced: set[str] = set()

    def compile(self, shape_name: str, pattern: str) -> Callable[[str], re.Match[str] | None] | None:
        if pattern not in self.compiled:
            try:
                self.compiled[pattern] = re.compile(java_regex_to_python(pattern), re.ASCII).fullmatch
            except (UnsupportedPatternError, re.error):
                self.unenforced.add(shape_name)
                return None
        return self.compiled[pattern]


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class OperationModel:
    name: str
    input_shape: StructureNode
    output_members: tuple[str, ...]
    error_codes: frozenset[str]
    sensitive_input_members: frozenset[str]  # top-level members that are, or contain, sensitive data
    sensitive_output_members: frozenset[str]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    operations: Mapping[str, OperationModel]
    metadata: Mapping[str, Any]
    target_prefix: str  # "TrentService"
    api_version: str  # "2014-11-01"
    json_version: str  # "1.1"
    signing_name: str  # "kms"
    unenforced_patterns: frozenset[str]  # shape names whose pattern could not be translated (expected empty)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class _Compiler:
    def __init__(self, shapes: Mapping[str, Any]) -> None:
        self.shapes = shapes
        self.regexes = _Regexes()
        self.nodes: dict[tuple[str, bool], Node] = {}

    def node(self, shape_name: str, sensitive: bool = False) -> Node:
        shape = self.shapes[shape_name]
        sensitive = sensitive or bool(shape.get("sensitive", False))
        cache_key = (shape_name, sensitive)
        if cache_key in self.nodes:
            return self.nodes[cache_key]
        kind = shape["type"]
        node: Node
        if kind == "structure":
            struct = StructureNode(shape_name, sensitive)
            self.nodes[cache_key] = struct  # registered first: tolerates recursive shapes
            required = set(shape.get("required", ()))
            members = shape["members"].items()
            struct.set_members(tuple((n, _camel(n), self.member(ref), n in required) for n, ref in members))
            struct.sensitive = struct.omit_value = sensitive or any(m[2].sensitive for m in struct.members)
            return struct
        if kind == "string":
            node = StringNode(shape_name, sensitive, shape, self.regexes)
        elif kind == "blob":
            node = BlobNode(shape_name, sensitive, shape)
        elif kind in _INT_RANGE:
            node = IntegerNode(shape_name, sensitive, shape)
        elif kind == "boolean":
            node = BooleanNode(shape_name, sensitive)
        elif kind == "timestamp":
            node = TimestampNode(shape_name, sensitive)
        elif kind == "list":
            node = ListNode(shape_name, sensitive, shape, self.node(shape["member"]["shape"]))
        elif kind == "map":
            key, value = self.node(shape["key"]["shape"]), self.node(shape["value"]["shape"])
            node = MapNode(shape_name, sensitive, shape, key, value)
        else:
            raise ValueError(f"unsupported shape type {kind!r} ({shape_name})")
        self.nodes[cache_key] = node
        return node

    def member(self, ref: Mapping[str, Any]) -> Node:
        return self.node(ref["shape"], bool(ref.get("sensitive", False)))

    def sensitive_members(self, shape_name: str | None) -> frozenset[str]:
        if shape_name is None:
            return frozenset()
        members = self.shapes[shape_name]["members"]
        return frozenset(name for name, ref in members.items() if self.member(ref).sensitive)


def _read_model() -> dict[str, Any]:
    # Read straight from botocore's package data (not botocore.loaders, whose search path also
    # includes ~/.aws/models and would let a per-user file change what the server accepts).
    root = importlib.resources.files("botocore") / "data" / SERVICE_NAME
    version = max(p.name for p in root.iterdir() if p.is_dir())
    for name in ("service-2.json.gz", "service-2.json"):
        path = root / version / name
        if path.is_file():
            raw = path.read_bytes()
            model: dict[str, Any] = json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw)
            return model
    raise FileNotFoundError(f"botocore ships no {SERVICE_NAME} service model")  # pragma: no cover


@cache
def load_service_model() -> ServiceModel:
    """The KMS model with every operation's input compiled; built once per process."""
    raw = _read_model()
    shapes: Mapping[str, Any] = raw["shapes"]
    compiler = _Compiler(shapes)
    operations: dict[str, OperationModel] = {}
    for name, op in raw["operations"].items():
        input_name: str | None = op.get("input", {}).get("shape")
        output_name: str | None = op.get("output", {}).get("shape")
        input_node = compiler.node(input_name) if input_name else StructureNode(f"{name}Request", False)
        if not isinstance(input_node, StructureNode):  # pragma: no cover - JSON inputs are structures
            raise ValueError(f"{name}: input shape is not a structure")
        codes = frozenset(
            shapes[err["shape"]].get("error", {}).get("code", err["shape"]) for err in op.get("errors", ())
        )
        operations[name] = OperationModel(
            name=name,
            input_shape=input_node,
            output_members=tuple(shapes[output_name]["members"]) if output_name else (),
            error_codes=codes,
            sensitive_input_members=compiler.sensitive_members(input_name),
            sensitive_output_members=compiler.sensitive_members(output_name),
        )
    meta = raw["metadata"]
    return ServiceModel(
        operations=MappingProxyType(operations),
        metadata=MappingProxyType(dict(meta)),
        target_prefix=meta["targetPrefix"],
        api_version=meta["apiVersion"],
        json_version=meta.get("jsonVersion", "1.1"),
        signing_name=meta.get("signingName", meta["endpointPrefix"]),
        unenforced_patterns=frozenset(compiler.regexes.unenforced),
    )
