"""The decision: may this principal perform this action on this resource? (section 6.4, exactly)

1. An action that is not cross-account capable is denied to another account's principal.
2. An explicit Deny in the key policy or in the caller's identity policies wins.
3. ``kp_direct``: a key-policy Allow names the caller (user, role -- matching its sessions --, session, or
   ``*``); ``kp_account``: one names the caller's account; ``ip_allow``: an identity-policy Allow covers
   the action on the resource; ``grant_ok``: a grant covers it.
4. Same account: ``kp_direct or (kp_account and ip_allow) or grant_ok``. Cross-account:
   ``((kp_direct or kp_account) and ip_allow) or grant_ok``. Without a key policy (alias and account-level
   resources) the identity policies alone decide, within the caller's account.

The account root, and a principal whose identity policies are not modelled (``identity_policies is
None``), have an implicit allow-all identity policy (kms-semantics.md 6.4 notes).
"""

from __future__ import annotations

from openkms.authz import grants as grant_rules
from openkms.authz.context import Context
from openkms.authz.documents import compile_identity_policy, compile_key_policy
from openkms.authz.model import AccessRequest, Decision, Denial, Principal, PrincipalType
from openkms.authz.policy import CompiledPolicy, Statement

_UNSET = "?"


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
    identity = (
        None
        if principal.identity_policies is None
        else [compile_identity_policy(document) for document in principal.identity_policies]
    )

    # Step 2: explicit deny.
    kp_allows: tuple[Statement, ...] = ()
    if key_policy is not None:
        denies, kp_allows = key_policy.for_action(action)
        for statement in denies:
            if (
                _deny_principal_applies(statement, principal)
                and statement.matches_resource(resource, ctx, True)
                and statement.conditions_hold(ctx, True)
            ):
                return Decision(
                    False, f"denied by key policy {statement.label()}", Denial.EXPLICIT_DENY_RESOURCE
                )
    if identity:
        for number, policy in enumerate(identity, start=1):
            for statement in policy.for_action(action)[0]:
                if statement.matches_resource(resource, ctx, False) and statement.conditions_hold(ctx, False):
                    return Decision(
                        False,
                        f"denied by identity policy #{number} {statement.label()}",
                        Denial.EXPLICIT_DENY_IDENTITY,
                    )

    # Step 3: the allow paths, each computed only when needed.
    kp_direct: Statement | None = None
    kp_account: Statement | None = None
    for statement in kp_allows:
        direct, account = _allow_principal_match(statement, principal)
        if not (direct or account) or (direct is False and kp_account is not None):
            continue
        if not statement.matches_resource(resource, ctx, True) or not statement.conditions_hold(ctx, True):
            continue
        if direct:
            kp_direct = statement
            break
        kp_account = statement

    ip_reason = _UNSET

    def ip_allow() -> str | None:
        nonlocal ip_reason
        if ip_reason is _UNSET:
            ip_reason = _identity_allow(principal, identity, action, resource, ctx) or ""
        return ip_reason or None

    # Step 4.
    if key_policy is None:
        if same_account and (reason := ip_allow()):
            return Decision(True, f"allowed by {reason} (no resource-based policy applies)")
    elif kp_direct is not None and same_account:
        return Decision(True, f"allowed by key policy {kp_direct.label()}")
    elif (kp_direct is not None or kp_account is not None) and (reason := ip_allow()):
        via = kp_direct or kp_account
        assert via is not None
        what = "naming the caller" if kp_direct else f"delegating to account {principal.account}"
        return Decision(True, f"allowed by key policy {via.label()} ({what}) and {reason}")

    for grant in request.grants:
        if not grant_rules.usable(grant, action, resource, request.encryption_context):
            continue
        match = grant_rules.grantee_match(grant, principal)
        if match == grant_rules.DIRECT:
            return Decision(True, f"allowed by grant {grant.grant_id}", grant_id=grant.grant_id)
        if match == grant_rules.ACCOUNT and (reason := ip_allow()):
            return Decision(
                True,
                f"allowed by grant {grant.grant_id} (to account {principal.account}) and {reason}",
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
            f"key policy {via.label()} lets {principal.arn} in, but no identity policy allows "
            f"kms:{action} on {resource}",
            Denial.NO_IDENTITY_ALLOW,
        )
    return Decision(
        False, f"no key policy statement allows kms:{action} for {principal.arn}", Denial.NO_RESOURCE_ALLOW
    )


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
    identity: list[CompiledPolicy] | None,
    action: str,
    resource: str,
    ctx: Context,
) -> str | None:
    """Why the caller's identity policies allow the action on the resource, or None."""
    if principal.type is PrincipalType.ACCOUNT:
        return "the account root's implicit identity permissions"
    if identity is None:
        return "identity policies not modelled for this principal (allow-all)"
    for number, policy in enumerate(identity, start=1):
        for statement in policy.for_action(action)[1]:
            if statement.matches_resource(resource, ctx, False) and statement.conditions_hold(ctx, False):
                return f"identity policy #{number} {statement.label()}"
    return None
