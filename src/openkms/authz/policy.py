"""Compiled policies: statements ready to match a request (section 6.3), grouped per action on demand.

A :class:`CompiledPolicy` is immutable once built, except for its per-action index, a small dict filled on
first use of each action (there are about sixty KMS actions) so that action globs are matched once per
policy and action, not once per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openkms.authz.conditions import Condition
from openkms.authz.context import Context
from openkms.authz.globs import glob_match, has_wildcard
from openkms.authz.principals import PrincipalSet
from openkms.authz.variables import Template


@dataclass(frozen=True, slots=True)
class ActionSet:
    everything: bool
    exact: frozenset[str]  # lower-cased "service:action"
    globs: tuple[str, ...]  # lower-cased patterns with * or ?

    @staticmethod
    def of(patterns: list[str]) -> ActionSet:
        lowered = [p.lower() for p in patterns]
        everything = any(p in ("*", "*:*") for p in lowered)
        return ActionSet(
            everything,
            frozenset(p for p in lowered if not has_wildcard(p)),
            tuple(p for p in lowered if has_wildcard(p)),
        )

    def matches(self, action: str) -> bool:
        """``action`` is lower-cased ``service:action``."""
        return self.everything or action in self.exact or any(glob_match(g, action) for g in self.globs)


@dataclass(frozen=True, slots=True)
class Statement:
    index: int  # 1-based position in the document
    sid: str | None
    allow: bool
    actions: ActionSet | None  # None: the statement has neither Action nor NotAction (no effect)
    not_action: bool
    resources: tuple[str | Template, ...] | None  # None: no Resource / NotResource (no effect)
    not_resource: bool
    principal: PrincipalSet | None  # None in identity policies
    not_principal: bool
    conditions: tuple[Condition, ...]
    label: str = ""  # 'statement "Sid" (#2)' or 'statement #2', for decision reasons
    any_resource: bool = False  # Resource contains "*": matches every resource (in a key policy, this key)

    @staticmethod
    def build(**fields: Any) -> Statement:
        sid, index, resources = fields["sid"], fields["index"], fields["resources"]
        label = f'statement "{sid}" (#{index})' if sid else f"statement #{index}"
        any_resource = resources is not None and not fields["not_resource"] and "*" in resources
        return Statement(**fields, label=label, any_resource=any_resource)

    def applies_to_action(self, action: str) -> bool:
        if self.actions is None or self.resources is None:
            return False
        return self.actions.matches(action) != self.not_action

    def matches_resource(self, resource: str, ctx: Context) -> bool:
        if self.any_resource:
            return True
        assert self.resources is not None
        hit = False
        for pattern in self.resources:
            if isinstance(pattern, Template):
                if pattern.glob_match(resource, ctx):
                    hit = True
                    break
            elif glob_match(pattern, resource):
                hit = True
                break
        return hit != self.not_resource

    def applies(self, resource: str, ctx: Context) -> bool:
        """Resource and Condition both match (Action and Principal are checked by the caller)."""
        if not self.any_resource and not self.matches_resource(resource, ctx):
            return False
        for condition in self.conditions:  # noqa: SIM110 - a plain loop is faster on this hot path
            if not condition.holds(ctx):
                return False
        return True


class CompiledPolicy:
    """A validated policy document: its statements and a per-action index of them."""

    __slots__ = ("_by_action", "key_policy", "statements")

    def __init__(self, statements: tuple[Statement, ...], *, key_policy: bool) -> None:
        self.statements = statements
        self.key_policy = key_policy
        self._by_action: dict[str, tuple[tuple[Statement, ...], tuple[Statement, ...]]] = {}

    def for_action(self, action: str) -> tuple[tuple[Statement, ...], tuple[Statement, ...]]:
        """(Deny statements, Allow statements) whose Action/NotAction covers ``kms:<action>``."""
        found = self._by_action.get(action)
        if found is None:
            full = "kms:" + action.lower()
            applicable = [s for s in self.statements if s.applies_to_action(full)]
            found = (tuple(s for s in applicable if not s.allow), tuple(s for s in applicable if s.allow))
            if len(self._by_action) < 512:  # bounded even if a caller invents action names
                self._by_action[action] = found
        return found
