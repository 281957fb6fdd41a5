"""IAM wildcard matching: ``*`` is any run of characters (also none), ``?`` exactly one character.

Patterns are compiled once into anchored regular expressions and cached, so a statement's globs cost one
``re.match`` per check.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

Matcher = Callable[[str], bool]


@functools.lru_cache(maxsize=8192)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def compile_glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """The anchored regular expression of an IAM glob (``.match(value)`` tests a whole value)."""
    return _compile(pattern, ignore_case)


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """True when ``value`` matches the IAM glob ``pattern``."""
    if not has_wildcard(pattern):
        return pattern.casefold() == value.casefold() if ignore_case else pattern == value
    if pattern == "*":
        return True
    return _compile(pattern, ignore_case).match(value) is not None
