"""Key policy documents: the default policy and the structural checks done when a policy is stored.

A policy is validated (``openkms.authz.documents.check_key_policy`` when present, the structural checks
here otherwise) and stored verbatim, and returned byte for byte.
"""

from __future__ import annotations

import orjson

from openkms import errors
from openkms.identifiers import principal_arn

try:  # the full validation (authz-engine)
    from openkms.authz.documents import (  # type: ignore[import-not-found,unused-ignore]
        check_key_policy as _check_key_policy,
    )
except ImportError:  # pragma: no cover - until it is merged
    _check_key_policy = None

MAX_POLICY_BYTES = 32 * 1024

_DEFAULT_POLICY = """{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "%(root)s"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"""


def default_policy(partition: str, account: str) -> str:
    return _DEFAULT_POLICY % {"root": principal_arn(partition, account, "root")}


def check_policy_name(name: str) -> None:
    """PutKeyPolicy's PolicyName (section 6.2): only ``default`` can be written here."""
    if name == "AWS_RAM":
        raise errors.ValidationException("The AWS_RAM policy can only be managed by the RAM service.")
    if name != "default":
        # [proposal] wording; pinned by a test
        raise errors.ValidationException(f"PolicyName {name} is not valid. Valid values: default.")


def check_policy(document: str) -> None:
    """Raise LimitExceeded for an oversized policy and MalformedPolicyDocument for a malformed one."""
    if len(document.encode("utf-8")) > MAX_POLICY_BYTES:
        raise errors.LimitExceededException("Policy exceeds the maximum size of 32768 bytes.")
    if _check_key_policy is not None:
        _check_key_policy(document)
        return
    _structural_check(document)


def _structural_check(document: str) -> None:
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise errors.MalformedPolicyDocumentException("The policy is not valid JSON.") from exc
    if not isinstance(parsed, dict):
        raise errors.MalformedPolicyDocumentException("The policy must be a JSON object.")
    statements = parsed.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise errors.MalformedPolicyDocumentException("The policy must contain at least one Statement.")
    for statement in statements:
        if not isinstance(statement, dict):
            raise errors.MalformedPolicyDocumentException("Each policy statement must be a JSON object.")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise errors.MalformedPolicyDocumentException("Each policy statement needs Effect Allow or Deny.")
        if "Action" not in statement and "NotAction" not in statement:
            raise errors.MalformedPolicyDocumentException("Each policy statement needs an Action.")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise errors.MalformedPolicyDocumentException(
                "Policy contains a statement with no principal. A key policy statement must name a Principal."
            )
