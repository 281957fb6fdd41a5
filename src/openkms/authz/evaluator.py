"""The decision: may this principal perform this action on this resource? (section 6.4, exactly)

1. An action that is not cross-account capable is denied to another account's principal.
2. An explicit Deny in the key policy or in the caller's identity policies wins.
3. ``kp_direct``: a key-policy Allow names the caller (user, role -- matching its sessions --, session, or
   ``*``); ``kp_account``: one names the caller's account; ``ip_allow``: an identity-policy Allow covers
   the action on the resource; ``grant_ok``: a grant covers it.
4. Same account: ``kp_direct or (kp_account and ip_allow) or grant_ok``. Cross-account:
   ``((kp_direct or kp_account) and ip_allow) or grant_ok``. Without a key policy (alias and account-level
   resources) the identity policies alone decide, within the caller's account.

The account root has an implicit allow-all identity policy; a principal whose identity policies are not
modelled (``identity_policies is None``) is treated as allow-all within its own account only, as
``authz.model.Principal`` specifies (kms-semantics.md 6.4 notes): cross-account use by such a principal
needs a grant.

This runs on every request: policies come compiled from the cache, statements pre-sorted per action, and
allowing decisions (immutable) are cached per deciding statement, so the common path allocates little.
"""

from __future__ import annotations

import functools

from openkms.authz import grants as grant_rules
from openkms.authz.context import Context
from openkms.authz.documents import compile_identity_policies, compile_key_policy
from openkms.authz.model import AccessRequest, Decision, Denial, Principal, PrincipalType
from openkms.authz.policy import CompiledPolicy, Statement

ROOT_IDENTITY = "the account root's implicit identity permissions"
UNMODELLED_IDENTITY = "identity policies not modelled for this principal (allow-all)"


def evaluate(request: AccessRequest) -> Decision:
    principal = request.principal
    action = request.action
    same_account = principal.account == request.resource_account
    if not same_account and not request.cross_account:
        return Decision(
            False, f"kms:{action} is not allowed for principals of another account", Denial.NO_RESOURCE_ALLOW
        )
    ctx = Context(request)
    resource = request.resource
    key_policy = compile_key_policy(request.key_policy) if request.key_policy is not None else None
    documents = principal.identity_policies
    identity = compile_identity_policies(tuple(documents)) if documents is not None else None

    # Step 2: explicit deny.
    kp_allows: tuple[Statement, ...] = ()
    if key_policy is not None:
        denies, kp_allows = key_policy.for_action(action)
        for statement in denies:
            if _deny_principal_applies(statement, principal) and statement.applies(resource, ctx):
                return Decision(
                    False, f"denied by key policy {statement.label}", Denial.EXPLICIT_DENY_RESOURCE
                )
    if identity:
        for number, policy in enumerate(identity, start=1):
            for statement in policy.for_action(action)[0]:
                if statement.applies(resource, ctx):
                    return Decision(
                        False,
                        f"denied by identity policy #{number} {statement.label}",
                        Denial.EXPLICIT_DENY_IDENTITY,
                    )

    # Step 3: the key-policy paths.
    kp_direct: Statement | None = None
    kp_account: Statement | None = None
    for statement in kp_allows:
        direct, account = _allow_principal_match(statement, principal)
        if direct or (account and kp_account is None):
            if not statement.applies(resource, ctx):
                continue
            if direct:
                kp_direct = statement
                break
            kp_account = statement

    # Step 4 (identity policies are evaluated only when a path needs them).
    if key_policy is None:
        if same_account:
            ip = _identity_allow(principal, identity, action, resource, ctx, same_account)
            if ip is not None:
                return _decision(f"allowed by {ip} (no resource-based policy applies)")
    elif kp_direct is not None and same_account:
        return _decision(f"allowed by key policy {kp_direct.label}")
    elif kp_direct is not None or kp_account is not None:
        ip = _identity_allow(principal, identity, action, resource, ctx, same_account)
        if ip is not None:
            if kp_direct is not None:
                return _decision(f"allowed by key policy {kp_direct.label} (naming the caller) and {ip}")
            assert kp_account is not None
            delegating = f"(delegating to account {principal.account})"
            return _decision(f"allowed by key policy {kp_account.label} {delegating} and {ip}")

    for grant in request.grants:
        if not grant_rules.usable(grant, action, resource, request.encryption_context):
            continue
        match = grant_rules.grantee_match(grant, principal)
        if match == grant_rules.DIRECT:
            return Decision(True, f"allowed by grant {grant.grant_id}", grant_id=grant.grant_id)
        if match == grant_rules.ACCOUNT:
            ip = _identity_allow(principal, identity, action, resource, ctx, same_account)
            if ip is not None:
                return Decision(
                    True,
                    f"allowed by grant {grant.grant_id} (to account {principal.account}) and {ip}",
                    grant_id=grant.grant_id,
                )

    # Step 5: implicit deny, worded after the step that failed (section 6.9).
    if key_policy is None:
        if same_account:
            return Decision(
                False, f"no identity policy allows kms:{action} on {resource}", Denial.NO_IDENTITY_ALLOW
            )
        return Decision(False, f"no resource-based policy applies to {resource}", Denial.NO_RESOURCE_ALLOW)
    via = kp_direct or kp_account
    if via is not None:
        return Decision(
            False,
            f"key policy {via.label} lets {principal.arn} in, but no identity policy allows "
            f"kms:{action} on {resource}",
            Denial.NO_IDENTITY_ALLOW,
        )
    return Decision(
        False, f"no key policy statement allows kms:{action} for {principal.arn}", Denial.NO_RESOURCE_ALLOW
    )


@functools.lru_cache(maxsize=4096)
def _decision(reason: str) -> Decision:
    # Allowing decisions repeat endlessly (same statements, same callers): share the immutable objects.
    return Decision(True, reason)


def _deny_principal_applies(statement: Statement, principal: Principal) -> bool:
    assert statement.principal is not None
    if statement.not_principal:
        return not statement.principal.covers_every_identity_of(principal)
    direct, account = statement.principal.matches(principal)
    return direct or account


def _allow_principal_match(statement: Statement, principal: Principal) -> tuple[bool, bool]:
    assert statement.principal is not None
    if statement.not_principal:
        return not statement.principal.covers_every_identity_of(principal), False
    return statement.principal.matches(principal)


def _identity_allow(
    principal: Principal,
    identity: tuple[CompiledPolicy, ...] | None,
    action: str,
    resource: str,
    ctx: Context,
    same_account: bool,
) -> str | None:
    """Why the caller's identity policies allow the action on the resource, or None."""
    if principal.type is PrincipalType.ACCOUNT:
        return ROOT_IDENTITY
    if identity is None:
        return UNMODELLED_IDENTITY if same_account else None
    for number, policy in enumerate(identity, start=1):
        for statement in policy.for_action(action)[1]:
            if statement.applies(resource, ctx):
                return f"identity policy #{number} {statement.label}"
    return None
