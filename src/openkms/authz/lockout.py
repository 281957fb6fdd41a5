"""The policy lockout safety check (section 6.7).

The caller builds the request for action ``PutKeyPolicy`` with ``key_policy`` set to the *new* policy and
the caller's identity policies in the principal. Grants never count. The check is evaluated with
``kms:PolicyName`` = ``default`` and ``kms:BypassPolicyLockoutSafetyCheck`` = false unless the caller set
them.
"""

from __future__ import annotations

import dataclasses

from openkms.authz.evaluator import evaluate
from openkms.authz.model import AccessRequest

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."


def locks_out(request: AccessRequest) -> bool:
    """True when, under the new policy, the caller could no longer call PutKeyPolicy on the key."""
    keys = dict(request.condition_keys)
    keys.setdefault("kms:policyname", "default")
    keys.setdefault("kms:bypasspolicylockoutsafetycheck", False)
    check = dataclasses.replace(request, action="PutKeyPolicy", grants=(), condition_keys=keys)
    return not evaluate(check).allowed
