"""Policy variables (``${aws:username}``, ``${aws:PrincipalTag/team}``, ``${aws:userid}``, any other key,
with an optional default ``${aws:username, 'anonymous'}``, and the escapes ``${*}``, ``${?}``, ``${$}``).

They are honoured in condition values of the String and Arn operators and in identity-policy Resource
entries, for ``"Version": "2012-10-17"`` documents only (older documents treat them literally, as AWS
does). A variable whose key is absent and that has no default makes that one value unmatchable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openkms.authz.context import Context
from openkms.authz.globs import glob_match

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"\s*([^,\s]+)\s*,\s*'([^']*)'\s*\Z")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class Template:
    """A policy string with variables: literal text and (key, default) slots, in order."""

    parts: tuple[str | tuple[str, str | None], ...]

    def resolve(self, ctx: Context) -> str | None:
        """The string with every variable replaced, or None when a variable has no value."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, default = part
            value = ctx.get(name)
            if isinstance(value, bool):
                value = "true" if value else "false"
            if isinstance(value, int | float):
                value = str(value)
            if not isinstance(value, str):  # absent, or a multi-valued key: not usable as a variable
                if default is None:
                    return None
                value = default
            out.append(value)
        return "".join(out)

    def glob_match(self, value: str, ctx: Context, *, ignore_case: bool = False) -> bool:
        """Glob match where the variable values are literal text, never wildcards."""
        pattern: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pattern.append(part)
                continue
            resolved = Template((part,)).resolve(ctx)
            if resolved is None:
                return False
            pattern.append(resolved.replace("*", "\x00").replace("?", "\x01"))
        text = "".join(pattern)
        if "\x00" not in text and "\x01" not in text:
            return glob_match(text, value, ignore_case=ignore_case)
        return _literal_aware_match(text, value, ignore_case)


def _literal_aware_match(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = []
    for char in pattern:
        if char == "*":
            regex.append(".*")
        elif char == "?":
            regex.append(".")
        elif char == "\x00":
            regex.append(re.escape("*"))
        elif char == "\x01":
            regex.append(re.escape("?"))
        else:
            regex.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.match("".join(regex) + r"\Z", value, flags) is not None


def parse_template(value: str) -> str | Template:
    """``value`` unchanged when it has no variable, else its Template."""
    if "${" not in value:
        return value
    parts: list[str | tuple[str, str | None]] = []
    position = 0
    for match in _VARIABLE.finditer(value):
        if match.start() > position:
            parts.append(value[position : match.start()])
        body = match.group(1)
        if body in _ESCAPES:
            # ${*} and ${?} stand for the literal characters: mark them as a slot that resolves to itself.
            parts.append(("\x02" + body, body))
        else:
            default_match = _DEFAULT.match(body)
            if default_match:
                parts.append((default_match.group(1).lower(), default_match.group(2)))
            else:
                parts.append((body.strip().lower(), None))
        position = match.end()
    if position < len(value):
        parts.append(value[position:])
    return Template(tuple(parts))
