"""The service side of authorization: who the caller is, which policies and grants apply, which condition
keys the request carries; the decision itself is ``openkms.authz`` (kms-semantics.md section 6).

Every permission check goes through :class:`Authorizer`: it builds an :class:`AccessRequest`, asks the
evaluator, records the decision's reason for the audit record (``RequestContext.decisions``) and raises
AccessDeniedException with AWS's wording when the answer is no.

Plug points (connected by ``openkms.app``): :class:`PrincipalSource` turns an authenticated caller into a
:class:`Principal` (IAM users, roles, identity policies); :class:`GrantSource` lists a key's grants.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from openkms import errors
from openkms.authz.evaluator import evaluate
from openkms.authz.lockout import locks_out
from openkms.authz.messages import access_denied_message
from openkms.authz.model import AccessRequest, ConditionValue, Decision, Grant, Principal, PrincipalType
from openkms.identifiers import parse_key_ref
from openkms.service import condition_keys
from openkms.service.context import Caller, RequestContext
from openkms.service.directory import Directory
from openkms.storage.base import KeyRecord

__all__ = ["Authorizer", "GrantSource", "PrincipalSource", "access_denied_message", "evaluate", "locks_out"]

# Operations a principal of another account may be allowed to perform (section 2.3).
CROSS_ACCOUNT_ACTIONS = frozenset(
    {
        "Encrypt",
        "Decrypt",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
        "CreateGrant",
        "DescribeKey",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListGrants",
        "RetireGrant",
        "RevokeGrant",
    }
)
_CACHE_LIMIT = 10_000
_Connection = tuple[Caller, str, str, bool]


class PrincipalSource(Protocol):
    """Called on every permission check (the hot path): cache, and return the same object while
    nothing about the principal changed (the Authorizer's per-connection cache checks identity)."""

    def principal(self, caller: Caller) -> Principal: ...


class GrantSource(Protocol):
    """Called on every key permission check: the key's current grants (cached, coherent across workers)."""

    def grants_for(self, key: KeyRecord) -> Sequence[Grant]: ...


def _user_id(arn: str) -> str:
    """A stable ``aws:userid`` for an IAM user (AWS: 'AIDA' + 17 characters)."""
    digest = base64.b32encode(hashlib.sha256(arn.encode()).digest()).decode()
    return "AIDA" + digest[:17]


class ArnPrincipalSource:
    """The default: the principal named by the access key's ARN, identity policies not modelled."""

    def __init__(self) -> None:
        self._cache: dict[Caller, Principal] = {}  # derived from the caller alone: never stale

    def principal(self, caller: Caller) -> Principal:
        found = self._cache.get(caller)
        if found is None:
            arn = caller.principal_arn
            if arn.endswith(":root"):
                found = Principal(arn, caller.account, PrincipalType.ACCOUNT, caller.account, arn)
            else:
                found = Principal(arn, caller.account, PrincipalType.USER, _user_id(arn), arn)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[caller] = found
        return found


class NoGrants:
    def grants_for(self, key: KeyRecord) -> Sequence[Grant]:
        return ()


class Authorizer:
    def __init__(
        self,
        partition: str,
        directory: Directory,
        principals: PrincipalSource | None = None,
        grants: GrantSource | None = None,
    ) -> None:
        self.partition = partition
        self.directory = directory
        self.principals: PrincipalSource = principals or ArnPrincipalSource()
        self.grants: GrantSource = grants or NoGrants()
        self._lock = threading.Lock()
        # (caller, region, source ip, TLS) -> (principal, keys without the time)
        self._connections: dict[_Connection, tuple[Principal, dict[str, ConditionValue]]] = {}
        self._second: tuple[int, str] = (-1, "")  # aws:EpochTime and aws:CurrentTime of the last second seen
        # (account, region, key id) -> (key record, extras, keys): valid while both are the cached objects
        self._key_keys: dict[tuple[str, str, str], tuple[KeyRecord, object, dict[str, ConditionValue]]] = {}

    # --- inputs --------------------------------------------------------------------------------------
    def principal(self, caller: Caller) -> Principal:
        # Not cached here: a source whose principals change (identity policies, tags) keeps its own
        # generation-checked cache; the connection keys below are rebuilt when the principal changes.
        return self.principals.principal(caller)

    def caller_keys(self, ctx: RequestContext, principal: Principal) -> dict[str, ConditionValue]:
        """``condition_keys.caller_keys``, with the caller's part cached (a fresh dict per request)."""
        if not ctx.principal_ids:  # for the audit record (every check passes here)
            ctx.principal_ids.append(principal.user_id)
        cache_key = (ctx.caller, ctx.region, ctx.source_ip, ctx.secure)
        cached = self._connections.get(cache_key)
        if cached is None or cached[0] is not principal:
            cached = (principal, condition_keys.connection_keys(ctx, principal))
            if len(self._connections) >= _CACHE_LIMIT:
                self._connections.clear()
            self._connections[cache_key] = cached
        keys = dict(cached[1])
        second = int(ctx.now)
        clock = self._second
        if clock[0] != second:
            clock = self._second = (second, condition_keys.iso_time(second))
        keys["aws:epochtime"] = second
        keys["aws:currenttime"] = clock[1]
        return keys

    def _keys_of_key(self, key: KeyRecord) -> dict[str, ConditionValue]:
        cache_key = (key.account, key.region, key.key_id)
        extras = self.directory.key_extras(key.account, key.region, key.key_id)
        cached = self._key_keys.get(cache_key)
        if cached is not None and cached[0] is key and cached[1] is extras:
            return cached[2]
        keys = condition_keys.key_keys(key, extras.tags, extras.aliases)
        with self._lock:
            if len(self._key_keys) >= _CACHE_LIMIT:
                self._key_keys.clear()
            self._key_keys[cache_key] = (key, extras, keys)
        return keys

    def _peek_arn(self, ctx: RequestContext, value: object) -> str | None:
        """The key ARN a KeyId parameter names, or None: no errors, no authorization (a condition key)."""
        if not isinstance(value, str):
            return None
        try:
            ref = parse_key_ref(value, partition=self.partition, region=ctx.region, allow_alias=True)
        except errors.KMSError:
            return None
        account = ref.account or ctx.caller.account
        key_id = ref.key_id
        if ref.alias_name is not None:
            alias = self.directory.alias(account, ctx.region, ref.alias_name)
            key_id = alias.target_key_id if alias is not None else None
        return None if key_id is None else f"arn:{self.partition}:kms:{ctx.region}:{account}:key/{key_id}"

    def _same_key(self, ctx: RequestContext, action: str, key: KeyRecord) -> bool:
        """kms:ReEncryptOnSameKey: the source key (the first key the request resolved, or SourceKeyId)
        equals the destination key (DestinationKeyId)."""
        if action == "ReEncryptFrom":
            other = self._peek_arn(ctx, ctx.params.get("DestinationKeyId"))
        else:
            other = self._peek_arn(ctx, ctx.params.get("SourceKeyId"))
            if other is None and ctx.resources:
                other = ctx.resources[0]
        return other == self.key_arn(key)

    def key_arn(self, key: KeyRecord) -> str:
        return f"arn:{self.partition}:kms:{key.region}:{key.account}:key/{key.key_id}"

    def key_request(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord,
        *,
        request_alias: str | None = None,
        extra: Mapping[str, ConditionValue] | None = None,
        policy: str | None = None,
        principal: Principal | None = None,
        key_keys: Mapping[str, ConditionValue] | None = None,
        grants: Sequence[Grant] | None = None,
    ) -> AccessRequest:
        principal = principal or self.principal(ctx.caller)
        keys = self.caller_keys(ctx, principal)
        keys.update(self._keys_of_key(key) if key_keys is None else key_keys)
        keys.update(condition_keys.request_keys(action, ctx.params, request_alias))
        if action in ("ReEncryptFrom", "ReEncryptTo"):
            keys["kms:reencryptonsamekey"] = self._same_key(ctx, action, key)
        if extra:
            keys.update(extra)
        context = None
        member = condition_keys.context_member(action)
        if member is not None:
            context = ctx.params.get(member) or {}
        return AccessRequest(
            principal=principal,
            action=action,
            resource=self.key_arn(key),
            resource_account=key.account,
            key_policy=key.policy if policy is None else policy,
            grants=self.grants.grants_for(key) if grants is None else grants,
            condition_keys=keys,
            encryption_context=context,
            cross_account=action in CROSS_ACCOUNT_ACTIONS,
        )

    def account_request(
        self, ctx: RequestContext, action: str, extra: Mapping[str, ConditionValue] | None = None
    ) -> AccessRequest:
        principal = self.principal(ctx.caller)
        keys = self.caller_keys(ctx, principal)
        if extra:
            keys.update(extra)
        return AccessRequest(
            principal=principal,
            action=action,
            resource="*",
            resource_account=ctx.caller.account,
            condition_keys=keys,
            cross_account=False,
        )

    def identity_request(
        self, ctx: RequestContext, action: str, resource: str, account: str
    ) -> AccessRequest:
        """A question for the caller's identity (IAM) policies alone: ``resource`` (an alias ARN, or the
        key or principal ARN of a grant rule) has no resource-based policy."""
        principal = self.principal(ctx.caller)
        return AccessRequest(
            principal=principal,
            action=action,
            resource=resource,
            resource_account=account,
            condition_keys=self.caller_keys(ctx, principal),
            cross_account=False,
        )

    # --- decisions -----------------------------------------------------------------------------------
    def decide(self, ctx: RequestContext | None, request: AccessRequest) -> Decision:
        """Evaluate without raising; the reason is recorded on ``ctx`` for the audit log."""
        decision = evaluate(request)
        if ctx is not None:
            verdict = "allowed" if decision.allowed else "denied"
            ctx.decisions.append(f"kms:{request.action} on {request.resource} {verdict}: {decision.reason}")
        return decision

    def check(self, ctx: RequestContext, request: AccessRequest) -> Decision:
        decision = self.decide(ctx, request)
        if not decision.allowed:
            raise errors.AccessDeniedException(access_denied_message(request, decision))
        return decision

    def authorize_key(
        self,
        ctx: RequestContext,
        action: str,
        key: KeyRecord,
        *,
        request_alias: str | None = None,
        extra: Mapping[str, ConditionValue] | None = None,
    ) -> Decision:
        return self.check(ctx, self.key_request(ctx, action, key, request_alias=request_alias, extra=extra))

    def authorize_account(
        self, ctx: RequestContext, action: str, extra: Mapping[str, ConditionValue] | None = None
    ) -> Decision:
        return self.check(ctx, self.account_request(ctx, action, extra))

    def authorize_alias(self, ctx: RequestContext, action: str, alias_arn: str, account: str) -> Decision:
        return self.check(ctx, self.identity_request(ctx, action, alias_arn, account))
