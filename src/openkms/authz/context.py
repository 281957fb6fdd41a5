"""The condition keys of one request, looked up by lower-cased name (section 6.5).

The caller supplies the request's keys in ``AccessRequest.condition_keys``. Keys that describe the
principal (``aws:PrincipalArn``, ``aws:userid``, ``aws:PrincipalTag/<k>`` ...) and ``kms:CallerAccount``
are derived from :class:`Principal` when the caller did not supply them, and ``aws:CurrentTime`` /
``aws:EpochTime`` default to now: AWS always has these, so a policy using them must not silently see
them as absent.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping

from openkms.authz.model import AccessRequest, ConditionValue, PrincipalType

# Identity-policy-only keys: absent when a key policy is evaluated (section 6.5); applied when compiling.
KEY_POLICY_IGNORED = frozenset({"kms:resourcealiases"})
_PRINCIPAL_TAG = "aws:principaltag/"


class Context:
    """Lazily derived view of a request's condition keys."""

    __slots__ = ("_keys", "_request", "_tags")

    def __init__(self, request: AccessRequest) -> None:
        self._request = request
        self._keys: Mapping[str, ConditionValue] = request.condition_keys
        self._tags: dict[str, str] | None = None

    def get(self, name: str) -> ConditionValue | None:
        """The value of condition key ``name`` (lower-cased), or None when the request has none."""
        value = self._keys.get(name)
        if value is not None:
            return value
        return self._derived(name)

    def _derived(self, name: str) -> ConditionValue | None:
        principal = self._request.principal
        if name.startswith(_PRINCIPAL_TAG):
            if self._tags is None:
                self._tags = {k.lower(): v for k, v in principal.tags.items()}
            return self._tags.get(name[len(_PRINCIPAL_TAG) :])
        if name == "aws:principalarn":
            return principal.principal_arn
        if name in ("aws:principalaccount", "kms:calleraccount"):
            return principal.account
        if name == "aws:principaltype":
            return principal.type.value
        if name == "aws:userid":
            return principal.user_id
        if name == "aws:username":
            # Only IAM users have a user name (the last path segment of the user ARN).
            if principal.type is PrincipalType.USER:
                return principal.arn.rsplit("/", 1)[-1]
            return None
        if name == "aws:currenttime":
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            return now.strftime("%Y-%m-%dT%H:%M:%SZ")
        if name == "aws:epochtime":
            return int(time.time())
        return None
