"""CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (kms-semantics.md section 6.8).

Every grant write goes through ``Core.changing()`` so all workers drop their cached grant lists before
their next request. :meth:`Grants.grants_for` is the ``GrantSource`` the authorization layer consults.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from openkms import errors
from openkms.authz.messages import access_denied_message
from openkms.authz.model import Denial, Grant
from openkms.identifiers import key_arn, parse_key_ref
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result, access_denied
from openkms.service.grant_rules import (
    EQUALS,
    GRANT_ID,
    MAX_GRANTS_PER_KEY,
    SOURCE_ARN,
    SUBSET,
    check_constraints,
    check_operations,
    check_principal,
    derived_grant_allowed,
    parse_constraints,
    principal_names,
)
from openkms.service.grant_tokens import GrantRef
from openkms.service.keystate import StateRule, check_state
from openkms.service.pagination import Markers
from openkms.storage.base import GrantRecord, KeyRecord, Tx

DEFAULT_LIMIT = 50
MAX_LIMIT = 100  # the model allows 1000; KMS documents 1-100 for both listings


def _check_grant_id(grant_id: str) -> None:
    if GRANT_ID.fullmatch(grant_id) is None:
        raise errors.InvalidGrantIdException(f"Invalid grant ID: {grant_id}")  # [proposal] wording


def _same_parameters(a: GrantRecord, b: GrantRecord) -> bool:
    """Name idempotency: the same grant was asked for again (operation order does not matter)."""
    return (
        a.grantee_principal == b.grantee_principal
        and a.grantee_service_principal == b.grantee_service_principal
        and a.retiring_principal == b.retiring_principal
        and a.retiring_service_principal == b.retiring_service_principal
        and set(a.operations) == set(b.operations)
        and a.constraints == b.constraints
        and a.issuing_account == b.issuing_account
    )


class Grants:
    def __init__(self, core: Core, markers: Markers) -> None:
        self.core = core
        self.markers = markers

    # --- GrantSource (the authorization layer's view) ------------------------------------------------
    def grants_for(self, key: KeyRecord) -> Sequence[Grant]:
        return self.core.directory.grants(key.account, key.region, key.key_id)

    # --- CreateGrant ---------------------------------------------------------------------------------
    def create_grant(self, ctx: RequestContext, p: Params) -> Result:
        self.core.check_grant_tokens(p)
        key, _ = self.core.lookup(ctx, p["KeyId"], allow_alias=False, action="CreateGrant")
        decision = self.core.authorizer.authorize_key(ctx, "CreateGrant", key)
        arn = self.core.arn(key)
        check_state(StateRule.CREATE_GRANT, key.state, arn)
        record = self._new_record(ctx, key, arn, p)
        # a permission that came from a grant can only hand on a narrower grant (section 6.8)
        self.check_derived_grant(ctx, key, record, decision.grant_id)
        with self.core.store.read() as tx:
            existing = self._idempotent_match(tx, record)
            if existing is None:
                self._check_limit(tx, key, arn)
        if p.get("DryRun"):
            raise errors.dry_run()
        if existing is not None:  # a retry: nothing to write, so no worker has to drop its caches
            record = existing
        else:
            with self.core.changing() as tx:
                existing = self._idempotent_match(tx, record)  # lost a race with the same retry?
                if existing is not None:
                    record = existing
                else:
                    self._check_limit(tx, key, arn)
                    tx.insert_grant(record)
        token = self.core.grant_tokens.issue(
            GrantRef(key.account, key.region, key.key_id, record.grant_id), ctx.caller.account, ctx.now
        )
        return {"GrantToken": token, "GrantId": record.grant_id}

    def _new_record(self, ctx: RequestContext, key: KeyRecord, arn: str, p: Params) -> GrantRecord:
        grantee, grantee_service = p.get("GranteePrincipal"), p.get("GranteeServicePrincipal")
        retiring, retiring_service = p.get("RetiringPrincipal"), p.get("RetiringServicePrincipal")
        if (grantee is None) == (grantee_service is None):
            raise errors.ValidationException(
                "You must specify either GranteePrincipal or GranteeServicePrincipal, but not both."
            )
        if retiring is not None and retiring_service is not None:
            raise errors.ValidationException(
                "You can specify either RetiringPrincipal or RetiringServicePrincipal, but not both."
            )
        for principal in (grantee, retiring):
            if principal is not None:
                check_principal(principal)
        operations = check_operations(key, p["Operations"], arn)
        constraints = check_constraints(key, p.get("Constraints"))
        if grantee_service is not None:
            if SOURCE_ARN not in parse_constraints(constraints):
                raise errors.ValidationException(
                    "A grant for a GranteeServicePrincipal requires a SourceArn grant constraint."
                )
            if retiring is None and retiring_service is None:
                raise errors.ValidationException(
                    "A grant for a GranteeServicePrincipal requires a RetiringPrincipal or "
                    "RetiringServicePrincipal."
                )
        return GrantRecord(
            grant_id=secrets.token_hex(32),
            account=key.account,
            region=key.region,
            key_id=key.key_id,
            name=p.get("Name", ""),
            created_at=ctx.now,
            issuing_account=ctx.caller.account,
            operations=operations,
            grantee_principal=grantee,
            grantee_service_principal=grantee_service,
            retiring_principal=retiring,
            retiring_service_principal=retiring_service,
            constraints=constraints,
        )

    def check_derived_grant(
        self, ctx: RequestContext, key: KeyRecord, record: GrantRecord, parent_id: str | None
    ) -> None:
        """The grant-derived CreateGrant rule (section 6.8): AccessDeniedException unless the new grant is
        within the parent grant's operations and at least as strictly constrained."""
        if parent_id is None:
            return
        parent = next((g for g in self.grants_for(key) if g.grant_id == parent_id), None)
        constraints = parse_constraints(record.constraints)
        if parent is None or not derived_grant_allowed(
            parent, record.operations, constraints.get(EQUALS), constraints.get(SUBSET)
        ):
            raise access_denied(ctx, "CreateGrant", self.core.arn(key), "no resource-based policy allows")

    def _idempotent_match(self, tx: Tx, record: GrantRecord) -> GrantRecord | None:
        if not record.name:
            return None
        named = tx.list_grants(record.account, record.region, record.key_id, name=record.name)
        return next((g for g in named if _same_parameters(g, record)), None)

    def _check_limit(self, tx: Tx, key: KeyRecord, arn: str) -> None:
        if tx.count_grants(key.account, key.region, key.key_id) >= MAX_GRANTS_PER_KEY:
            raise errors.LimitExceededException(
                f"Cannot create more than {MAX_GRANTS_PER_KEY} grants for {arn}."
            )

    # --- listings ------------------------------------------------------------------------------------
    def list_grants(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="ListGrants")
        grant_id = p.get("GrantId")
        if grant_id is not None:
            _check_grant_id(grant_id)
        filters = {
            "grant_id": grant_id,
            "grantee_principal": p.get("GranteePrincipal"),
            "grantee_service_principal": p.get("GranteeServicePrincipal"),
        }
        scope = "grants|" + "|".join(
            (key.account, key.region, key.key_id, *(v or "" for v in filters.values()))
        )
        after = self.markers.read(scope, p.get("Marker"))
        limit = min(p.get("Limit", DEFAULT_LIMIT), MAX_LIMIT)
        with self.core.store.read() as tx:
            rows = tx.list_grants(
                key.account, key.region, key.key_id, after_grant_id=after, limit=limit + 1, **filters
            )
        return self._page(rows, limit, scope)

    def list_retirable_grants(self, ctx: RequestContext, p: Params) -> Result:
        principal, service = p.get("RetiringPrincipal"), p.get("RetiringServicePrincipal")
        if (principal is None) == (service is None):
            raise errors.ValidationException(
                "You must specify either RetiringPrincipal or RetiringServicePrincipal, but not both."
            )
        if service is not None:
            # only callers in a service principal may use this filter, and ours never are
            raise access_denied(ctx, "ListRetirableGrants", service, "no identity-based policy allows")
        assert principal is not None
        account = check_principal(principal)
        self.authorize_list_retirable(ctx, principal, account)
        scope = f"retirable|{ctx.region}|{principal}"
        after = self.markers.read(scope, p.get("Marker"))
        limit = min(p.get("Limit", DEFAULT_LIMIT), MAX_LIMIT)
        with self.core.store.read() as tx:
            rows = tx.list_retirable_grants(
                ctx.region, retiring_principal=principal, after_grant_id=after, limit=limit + 1
            )
        return self._page(rows, limit, scope)

    def authorize_list_retirable(self, ctx: RequestContext, principal: str, account: str) -> None:
        """ListRetirableGrants is authorised by the caller account's identity policies for
        ``kms:ListRetirableGrants`` on the named retiring principal; no key-owner permission is needed
        (section 6.8). The principal must belong to the caller's account."""
        if account != ctx.caller.account:
            raise access_denied(ctx, "ListRetirableGrants", principal, "no identity-based policy allows")
        authorizer = self.core.authorizer
        authorizer.check(ctx, authorizer.identity_request(ctx, "ListRetirableGrants", principal, account))

    def _page(self, rows: Sequence[GrantRecord], limit: int, scope: str) -> Result:
        page, more = rows[:limit], len(rows) > limit
        result: Result = {"Grants": [self.entry(g) for g in page], "Truncated": more}
        if more:
            result["NextMarker"] = self.markers.make(scope, page[-1].grant_id)
        return result

    def entry(self, g: GrantRecord) -> dict[str, Any]:
        """A GrantListEntry (absent members omitted; ``Name`` is ``""`` for an unnamed grant)."""
        out: dict[str, Any] = {
            "KeyId": key_arn(self.core.partition, g.region, g.account, g.key_id),
            "GrantId": g.grant_id,
            "Name": g.name,
            "CreationDate": g.created_at,
            "IssuingAccount": f"arn:{self.core.partition}:iam::{g.issuing_account}:root",
            "Operations": list(g.operations),
        }
        for member, value in (
            ("GranteePrincipal", g.grantee_principal),
            ("GranteeServicePrincipal", g.grantee_service_principal),
            ("RetiringPrincipal", g.retiring_principal),
            ("RetiringServicePrincipal", g.retiring_service_principal),
        ):
            if value is not None:
                out[member] = value
        if g.constraints:
            out["Constraints"] = parse_constraints(g.constraints)
        return out

    # --- RetireGrant / RevokeGrant -------------------------------------------------------------------
    def retire_grant(self, ctx: RequestContext, p: Params) -> Result:
        token, key_value, grant_id = p.get("GrantToken"), p.get("KeyId"), p.get("GrantId")
        if token is not None:
            ref = self.core.grant_tokens.open(token)
            if grant_id is not None and grant_id != ref.grant_id:
                raise errors.ValidationException(
                    "The GrantId does not match the grant named by the GrantToken."
                )
            ctx.additional_event_data["grantId"] = ref.grant_id
            account, region, key_id, grant_id = ref.account, ref.region, ref.key_id, ref.grant_id
            if region != ctx.region:
                raise errors.InvalidGrantTokenException("The grant token is invalid.")
            if key_value is not None:
                # a KeyId sent with the token must name the token's key, as a GrantId must name its grant:
                # otherwise the caller retires a grant of a key it did not mean
                named = parse_key_ref(
                    key_value, partition=self.core.partition, region=ctx.region, allow_alias=False
                )
                if (named.account or ctx.caller.account, named.key_id) != (account, key_id):
                    raise errors.ValidationException(
                        "The KeyId does not match the key of the grant named by the GrantToken."
                    )
        elif key_value is not None and grant_id is not None:
            _check_grant_id(grant_id)
            ref_key = parse_key_ref(
                key_value, partition=self.core.partition, region=ctx.region, allow_alias=False
            )
            assert ref_key.key_id is not None
            account, region, key_id = ref_key.account or ctx.caller.account, ctx.region, ref_key.key_id
        else:
            raise errors.ValidationException(
                "Either a GrantToken, or a KeyId and a GrantId, must be specified."
            )
        arn = key_arn(self.core.partition, region, account, key_id)
        ctx.resources.append(arn)
        key = self.core.directory.key(account, region, key_id)
        if key is None:
            raise errors.NotFoundException(f"Key '{arn}' does not exist")
        with self.core.store.read() as tx:
            grant = tx.get_grant(account, region, key_id, grant_id)
        if grant is None:
            raise errors.NotFoundException(f"Grant ID {grant_id} not found")  # [proposal] wording
        self.authorize_retire(ctx, grant, arn)
        if p.get("DryRun"):
            raise errors.dry_run()
        self._delete(grant, arn)
        return {}

    def authorize_retire(self, ctx: RequestContext, grant: GrantRecord, arn: str) -> None:
        """Who may retire a grant (section 6.8). The retiring principal and (with RetireGrant among the
        operations) the grantee may without an allowing policy. Principals of the account that created the
        grant, and of an account named as retiring principal, may when their identity policy allows
        ``kms:RetireGrant``. Key policies never count. An explicit Deny of ``kms:RetireGrant`` in the
        caller's identity policy stops everyone, the retiring principal and the grantee included: in IAM an
        explicit deny overrides every allow (section 6.4 step 2). AccessDeniedException otherwise."""
        authorizer = self.core.authorizer
        # the identity (IAM) question: an explicit Deny wins; a root caller and a principal whose identity
        # policies are not modelled are allowed within their own account (section 6.4)
        request = authorizer.identity_request(ctx, "RetireGrant", arn, ctx.caller.account)
        decision = authorizer.decide(None, request)  # recorded for the audit below, where it decides
        if decision.denial is Denial.EXPLICIT_DENY_IDENTITY:
            authorizer.decide(ctx, request)
            raise errors.AccessDeniedException(access_denied_message(request, decision))
        caller = ctx.caller.principal_arn
        if grant.retiring_principal is not None and principal_names(grant.retiring_principal, caller):
            ctx.decisions.append(f"kms:RetireGrant on {arn} allowed: the caller is the retiring principal")
            return
        if (
            "RetireGrant" in grant.operations
            and grant.grantee_principal is not None
            and principal_names(grant.grantee_principal, caller)
        ):
            ctx.decisions.append(f"kms:RetireGrant on {arn} allowed: the grantee holds RetireGrant")
            return
        account_root = f"arn:{self.core.partition}:iam::{ctx.caller.account}:root"
        delegating = grant.issuing_account == ctx.caller.account or grant.retiring_principal in (
            account_root,
            ctx.caller.account,
        )
        if not delegating:
            raise access_denied(ctx, "RetireGrant", arn, "no identity-based policy allows")
        if not authorizer.decide(ctx, request).allowed:
            raise access_denied(ctx, "RetireGrant", arn, "no identity-based policy allows")

    def revoke_grant(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="RevokeGrant")
        arn = self.core.arn(key)
        grant_id = p["GrantId"]
        _check_grant_id(grant_id)
        with self.core.store.read() as tx:
            grant = tx.get_grant(key.account, key.region, key.key_id, grant_id)
        if grant is None:
            raise errors.NotFoundException(f"Grant ID {grant_id} not found")  # [proposal] wording
        if p.get("DryRun"):
            raise errors.dry_run()
        self._delete(grant, arn)
        return {}

    def _delete(self, grant: GrantRecord, arn: str) -> None:
        with self.core.changing() as tx:
            if not tx.delete_grant(grant.account, grant.region, grant.key_id, grant.grant_id):
                # a concurrent RetireGrant/RevokeGrant got there first
                raise errors.NotFoundException(f"Grant ID {grant.grant_id} not found")
