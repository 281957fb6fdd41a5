"""Key policy documents: the default policy and the structural checks done when a policy is stored.

Full policy evaluation arrives with the authorization work; until then a policy is validated and stored
verbatim, and returned byte for byte.
"""

from __future__ import annotations

import orjson

from openkms import errors
from openkms.identifiers import principal_arn

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


def check_policy(document: str) -> None:
    """Raise LimitExceeded for an oversized policy and MalformedPolicyDocument for a malformed one."""
    if len(document.encode("utf-8")) > MAX_POLICY_BYTES:
        raise errors.LimitExceededException("Policy exceeds the maximum size of 32768 bytes.")
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
