"""The Principal / NotPrincipal element: syntax (section 6.2) and matching against a caller (section 6.3).

A caller is a chain of identities: its account, then the IAM user or role, then (for a role session) the
session. A key policy entry in account form (``"111122223333"`` or ``arn:aws:iam::111122223333:root``)
names *the account* -- it delegates to the account's identity policies (``kp_account`` in section 6.4) --
while a user, role or session ARN names the principal itself (``kp_direct``). A role ARN matches every
session of the role. ``Service`` and ``Federated`` principals are accepted but never match our callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from openkms import errors
from openkms.authz.model import Principal, PrincipalType

INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."

_PARTITION = r"aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b"
_ACCOUNT_ID = re.compile(r"\d{12}\Z")
_ROOT = re.compile(rf"arn:(?:{_PARTITION}):iam::(\d{{12}}):root\Z")
# IAM names: letters, digits and +=,.@_- ; paths are /-separated segments of the same characters.
_NAME = r"[\w+=,.@-]+"
_USER_OR_ROLE = re.compile(rf"arn:(?:{_PARTITION}):iam::(\d{{12}}):(?:user|role)/(?:{_NAME}/)*{_NAME}\Z")
_SESSION = re.compile(rf"arn:(?:{_PARTITION}):sts::(\d{{12}}):assumed-role/[\w+=,.@-]+/[\w+=,.@-]+\Z")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9.-]*\.amazonaws\.com(?:\.cn)?\Z")
_PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")


@dataclass(frozen=True, slots=True)
class PrincipalSet:
    """The parsed Principal (or NotPrincipal) element of one statement."""

    everyone: bool = False  # "*" or {"AWS": "*"}
    accounts: frozenset[str] = frozenset()  # account form entries, as account ids
    arns: frozenset[str] = frozenset()  # user, role and session ARNs, exactly as written
    others: tuple[str, ...] = ()  # Service / Federated / CanonicalUser entries: never match a caller

    def matches(self, caller: Principal) -> tuple[bool, bool]:
        """(direct, account): does an entry name the caller itself, and does one name its account?"""
        direct = self.everyone or caller.arn in self.arns or caller.principal_arn in self.arns
        return direct, caller.account in self.accounts

    def covers_every_identity_of(self, caller: Principal) -> bool:
        """For NotPrincipal: is every identity in the caller's chain listed? (AWS: to exempt a user from a
        NotPrincipal Deny you list the user *and* its account; for a role session, the account, the role
        and the session.) A caller not fully covered is matched by the NotPrincipal statement."""
        if self.everyone:
            return True
        if caller.account not in self.accounts:
            return False
        if caller.type is PrincipalType.ACCOUNT:
            return True
        if caller.principal_arn not in self.arns:
            return False
        return caller.type is not PrincipalType.ASSUMED_ROLE or caller.arn in self.arns


def account_of_principal(value: str) -> str | None:
    """The account id if ``value`` is in account form (12 digits or the ``:root`` ARN), else None."""
    if _ACCOUNT_ID.match(value):
        return value
    match = _ROOT.match(value)
    return match.group(1) if match else None


def is_valid_aws_principal(value: str) -> bool:
    return bool(
        value == "*"
        or _ACCOUNT_ID.match(value)
        or _ROOT.match(value)
        or _USER_OR_ROLE.match(value)
        or _SESSION.match(value)
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)


def parse_principal(element: Any) -> PrincipalSet:
    """Validate a Principal/NotPrincipal element and compile it; MalformedPolicyDocument if invalid."""
    if element == "*":
        return PrincipalSet(everyone=True)
    if not isinstance(element, dict) or not element:
        raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)
    everyone = False
    accounts: set[str] = set()
    arns: set[str] = set()
    others: list[str] = []
    for kind, value in element.items():
        if kind not in _PRINCIPAL_KINDS:
            raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)
        for entry in _strings(value):
            if kind == "AWS":
                if not is_valid_aws_principal(entry):
                    raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)
                account = account_of_principal(entry)
                if entry == "*":
                    everyone = True
                elif account is not None:
                    accounts.add(account)
                else:
                    arns.add(entry)
            elif kind == "Service":
                if not _SERVICE.match(entry):
                    raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)
                others.append(entry)
            else:
                if not entry or entry == "*":
                    raise errors.MalformedPolicyDocumentException(INVALID_PRINCIPALS)
                others.append(entry)
    return PrincipalSet(everyone, frozenset(accounts), frozenset(arns), tuple(others))
