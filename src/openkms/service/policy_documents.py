"""Key policy documents: the default policy and the structural checks done when a policy is stored.

A policy is validated by ``openkms.authz.documents.check_key_policy`` and stored verbatim, and returned
byte for byte.
"""

from __future__ import annotations

from openkms import errors
from openkms.authz.documents import check_key_policy
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
    check_key_policy(document)
