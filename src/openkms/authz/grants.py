"""Grants as an allow path (the ``grant_ok`` test of section 6.4, rules in section 6.8).

A grant allows a request when its grantee matches the caller (like a key-policy principal: a role ARN
matches its sessions), its operations include the action, and its constraints hold. A grant to an
account (``arn:aws:iam::A:root`` or ``A``) behaves like the account principal in a key policy: principals
of A may use it when their identity policy allows the action on the key. A grant with a ``SourceArn``
constraint never matches: our callers never act on behalf of an AWS resource.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from openkms.authz.model import Grant, Principal
from openkms.authz.principals import account_of_principal

# Operations that take no encryption context: the context constraints do not apply to them
# (CreateGrant's own inheritance rule is enforced by the service when the grant is created).
CONTEXT_FREE_OPERATIONS = frozenset({"DescribeKey", "RetireGrant", "CreateGrant"})

DIRECT = "direct"
ACCOUNT = "account"


@functools.lru_cache(maxsize=4096)
def _grantee_account(grantee: str) -> str | None:
    return account_of_principal(grantee)


def grantee_match(grant: Grant, caller: Principal) -> str | None:
    """DIRECT when the grantee names the caller, ACCOUNT when it names the caller's account, else None."""
    grantee = grant.grantee_principal
    if grantee == caller.arn or grantee == caller.principal_arn:
        return DIRECT
    if _grantee_account(grantee) == caller.account:
        return ACCOUNT
    return None


def constraints_hold(grant: Grant, action: str, context: Mapping[str, str] | None) -> bool:
    """EncryptionContextEquals / Subset: keys compared case-insensitively, values case-sensitively."""
    if grant.source_arn is not None:
        return False
    equals, subset = grant.encryption_context_equals, grant.encryption_context_subset
    if (equals is None and subset is None) or action in CONTEXT_FREE_OPERATIONS:
        return True
    request = {k.lower(): v for k, v in (context or {}).items()}
    if equals is not None and request != {k.lower(): v for k, v in equals.items()}:
        return False
    return subset is None or all(request.get(k.lower()) == v for k, v in subset.items())


def usable(grant: Grant, action: str, key_arn: str, context: Mapping[str, str] | None) -> bool:
    """Everything but the grantee: the grant is for this key, covers the action, and its constraints hold."""
    if grant.key_arn != key_arn or action not in grant.operations:
        return False
    return constraints_hold(grant, action, context)
