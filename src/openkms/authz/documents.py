"""Policy documents: validation (kms-semantics.md section 6.2) and compilation, cached per document.

``check_key_policy`` / ``check_identity_policy`` raise ``MalformedPolicyDocumentException`` (AWS's wording
where it is known) or ``LimitExceededException``. ``compile_key_policy`` / ``compile_identity_policy``
return the cached :class:`CompiledPolicy` the evaluator uses: a document is parsed once per process, not
once per request.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from openkms import errors
from openkms.authz.conditions import Condition, compile_block
from openkms.authz.policy import ActionSet, CompiledPolicy, Statement
from openkms.authz.principals import PrincipalSet, parse_principal
from openkms.authz.variables import Template, parse_template

MAX_POLICY_BYTES = 32 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")
_TOP_LEVEL = frozenset({"Version", "Id", "Statement"})
_STATEMENT = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource"}
    | {"Condition"}
)
_ACTION = re.compile(r"[A-Za-z0-9*?_-]+\Z")
_IAM_SID = re.compile(r"[0-9A-Za-z]*\Z")
_CACHE_SIZE = 4096


def check_key_policy(document: str) -> None:
    """Raise if ``document`` is not an acceptable key policy (syntax only: see :func:`policy_principals`)."""
    compile_key_policy(document)


def check_identity_policy(document: str) -> None:
    """Raise if ``document`` is not an acceptable identity (IAM) policy."""
    compile_identity_policy(document)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_key_policy(document: str) -> CompiledPolicy:
    return _compile(document, key_policy=True)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_identity_policy(document: str) -> CompiledPolicy:
    return _compile(document, key_policy=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_identity_policies(documents: tuple[str, ...]) -> tuple[CompiledPolicy, ...]:
    """A principal's identity policies, compiled together (one cache look-up per request)."""
    return tuple(compile_identity_policy(document) for document in documents)


def policy_principals(document: str) -> list[str]:
    """The ``AWS`` principal entries (other than ``*``) of a valid key policy, for existence checks."""
    compile_key_policy(document)
    out: list[str] = []
    for statement in _statements(orjson.loads(document)):
        for element in ("Principal", "NotPrincipal"):
            value = statement.get(element)
            if isinstance(value, dict):
                entries = value.get("AWS", [])
                for entry in [entries] if isinstance(entries, str) else entries:
                    if entry != "*" and entry not in out:
                        out.append(entry)
    return out


def _malformed(message: str) -> errors.KMSError:
    return errors.MalformedPolicyDocumentException(message)


def _compile(document: str, *, key_policy: bool) -> CompiledPolicy:
    if len(document.encode("utf-8")) > MAX_POLICY_BYTES:
        raise errors.LimitExceededException("Policy exceeds the maximum size of 32768 bytes.")
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError:
        raise _malformed("The policy is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise _malformed("The policy must be a JSON object.")
    for name in parsed:
        if name not in _TOP_LEVEL:
            raise _malformed(f"The policy contains an unsupported element: {name}.")
    version = parsed.get("Version")
    if version is not None and version not in VERSIONS:
        raise _malformed("The policy Version must be 2012-10-17 or 2008-10-17.")
    if "Id" in parsed and not isinstance(parsed["Id"], str):
        raise _malformed("The policy Id must be a string.")
    statements = _statements(parsed)
    variables = version == "2012-10-17"
    compiled = []
    sids: set[str] = set()
    for index, statement in enumerate(statements, start=1):
        compiled.append(_statement(index, statement, key_policy=key_policy, variables=variables))
        sid = compiled[-1].sid
        if not key_policy and sid:
            if sid in sids:
                raise _malformed("Statement IDs (SID) in a single policy must be unique.")
            sids.add(sid)
    return CompiledPolicy(tuple(compiled), key_policy=key_policy)


def _statements(parsed: dict[str, Any]) -> list[dict[str, Any]]:
    statements = parsed.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _malformed("The policy must contain at least one Statement.")
    for statement in statements:
        if not isinstance(statement, dict):
            raise _malformed("Each policy statement must be a JSON object.")
    return statements


def _statement(index: int, statement: dict[str, Any], *, key_policy: bool, variables: bool) -> Statement:
    for name in statement:
        if name not in _STATEMENT:
            raise _malformed(f"The policy statement contains an unsupported element: {name}.")
    sid = statement.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise _malformed("The Sid of a policy statement must be a string.")
    if not key_policy and sid and not _IAM_SID.match(sid):
        raise _malformed(
            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular "
            "expression [0-9A-Za-z]*"
        )
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _malformed("Each policy statement needs Effect Allow or Deny.")

    principal, not_principal = _principal(statement, key_policy)
    actions, not_action = _pair(statement, "Action", "NotAction")
    resources, not_resource = _pair(statement, "Resource", "NotResource")
    if not key_policy:
        # IAM rejects these; a key policy accepts them and the statement simply has no effect (model doc).
        if actions is None:
            raise _malformed("Policy statement must contain actions.")
        if resources is None:
            raise _malformed("Policy statement must contain resources.")
    if actions is not None:
        for action in actions:
            _check_action(action)
    conditions: tuple[Condition, ...] = ()
    if "Condition" in statement:
        conditions = compile_block(statement["Condition"], key_policy=key_policy, variables=variables)
    resource_patterns: tuple[str | Template, ...] | None = None
    if resources is not None:
        resource_patterns = tuple(parse_template(r) if variables else r for r in resources)
    return Statement.build(
        index=index,
        sid=sid or None,
        allow=effect == "Allow",
        actions=ActionSet.of(actions) if actions is not None else None,
        not_action=not_action,
        resources=resource_patterns,
        not_resource=not_resource,
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
    )


def _principal(statement: dict[str, Any], key_policy: bool) -> tuple[PrincipalSet | None, bool]:
    has_principal = "Principal" in statement
    has_not_principal = "NotPrincipal" in statement
    if not key_policy:
        if has_principal or has_not_principal:
            raise _malformed("Policy document should not specify a principal.")
        return None, False
    if has_principal and has_not_principal:
        raise _malformed("A policy statement cannot have both Principal and NotPrincipal.")
    if not has_principal and not has_not_principal:
        raise _malformed(
            "Policy contains a statement with no principal. A key policy statement must name a Principal."
        )
    element = statement["Principal"] if has_principal else statement["NotPrincipal"]
    return parse_principal(element), has_not_principal


def _pair(statement: dict[str, Any], positive: str, negative: str) -> tuple[list[str] | None, bool]:
    if positive in statement and negative in statement:
        raise _malformed(f"A policy statement cannot have both {positive} and {negative}.")
    name = positive if positive in statement else negative if negative in statement else None
    if name is None:
        return None, False
    value = statement[name]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise _malformed(f"The {name} element must be a non-empty string or a list of non-empty strings.")
    return items, name == negative


def _check_action(action: str) -> None:
    if action == "*":
        return
    if ":" not in action:
        raise _malformed("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
    vendor, _, name = action.partition(":")
    if ":" in name:
        raise _malformed("Actions/Condition can contain only one colon.")
    if not vendor or not _ACTION.match(vendor) or not name or not _ACTION.match(name):
        raise _malformed(f"Policy contains an invalid action: {action}.")
