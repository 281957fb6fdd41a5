"""CreateAlias, UpdateAlias, DeleteAlias, ListAliases (kms-semantics.md sections 2.1 and 7.6)."""

from __future__ import annotations

from openkms import errors
from openkms.identifiers import check_alias_name
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.keystate import StateRule, check_state
from openkms.service.pagination import Markers
from openkms.storage.base import AliasRecord, DuplicateError, KeyRecord

MAX_ALIASES_PER_KEY = 50


def _key_type(key: KeyRecord) -> tuple[str, str]:
    kind = "symmetric" if key.key_spec == "SYMMETRIC_DEFAULT" else key.key_spec.split("_")[0]
    return kind, key.key_usage


class Aliases:
    def __init__(self, core: Core, markers: Markers) -> None:
        self.core = core
        self.markers = markers

    def create_alias(self, ctx: RequestContext, p: Params) -> Result:
        name = p["AliasName"]
        check_alias_name(name)
        # kms:CreateAlias on the alias (identity policy only) and on the key (section 6.1)
        self._authorize_alias(ctx, "CreateAlias", name)
        key = self.core.resolve(ctx, p["TargetKeyId"], allow_alias=False, action="CreateAlias")
        check_state(StateRule.METADATA, key.state, self.core.arn(key))
        record = AliasRecord(ctx.caller.account, ctx.region, name, key.key_id, ctx.now, ctx.now)
        exists = errors.AlreadyExistsException(
            f"An alias with the name {self.core.alias_arn(ctx, name)} already exists"
        )
        try:
            # ``changing``: the key's alias list (kms:ResourceAliases) is cached
            with self.core.changing() as tx:
                if tx.get_alias(record.account, record.region, name) is not None:
                    raise exists
                if tx.count_aliases_for_key(key.account, key.region, key.key_id) >= MAX_ALIASES_PER_KEY:
                    raise errors.LimitExceededException(
                        f"Cannot create more than {MAX_ALIASES_PER_KEY} aliases for {self.core.arn(key)}."
                    )
                tx.insert_alias(record)
        except DuplicateError as exc:  # lost a race with a concurrent CreateAlias of the same name
            raise exists from exc
        return {}

    def update_alias(self, ctx: RequestContext, p: Params) -> Result:
        name = p["AliasName"]
        check_alias_name(name)
        self._authorize_alias(ctx, "UpdateAlias", name)
        new_target = self.core.resolve(ctx, p["TargetKeyId"], allow_alias=False, action="UpdateAlias")
        alias = self._existing(ctx, name)
        current = self.core.directory.key(alias.account, alias.region, alias.target_key_id)
        if current is not None:  # UpdateAlias needs the permission on the current key too
            self.core.authorizer.authorize_key(ctx, "UpdateAlias", current)
        check_state(StateRule.METADATA, new_target.state, self.core.arn(new_target))
        if current is not None and _key_type(current) != _key_type(new_target):
            raise errors.ValidationException(
                f"{self.core.arn(new_target)} is not the same key type and key usage as the current target "
                f"{self.core.arn(current)} of {name}."
            )
        with self.core.changing() as tx:
            if (
                tx.count_aliases_for_key(new_target.account, new_target.region, new_target.key_id)
                >= MAX_ALIASES_PER_KEY
            ):
                raise errors.LimitExceededException(
                    f"Cannot create more than {MAX_ALIASES_PER_KEY} aliases for {self.core.arn(new_target)}."
                )
            tx.update_alias(
                AliasRecord(alias.account, alias.region, name, new_target.key_id, alias.created_at, ctx.now)
            )
        return {}

    def delete_alias(self, ctx: RequestContext, p: Params) -> Result:
        name = p["AliasName"]
        check_alias_name(name)
        self._authorize_alias(ctx, "DeleteAlias", name)
        alias = self._existing(ctx, name)
        key = self.core.directory.key(alias.account, alias.region, alias.target_key_id)
        if key is not None:
            self.core.authorizer.authorize_key(ctx, "DeleteAlias", key)
        with self.core.changing() as tx:
            tx.delete_alias(alias.account, alias.region, name)
        return {}

    def list_aliases(self, ctx: RequestContext, p: Params) -> Result:
        self.core.authorizer.authorize_account(ctx, "ListAliases")  # identity policies only
        key_id = None
        if "KeyId" in p:
            key_id = self.core.lookup(ctx, p["KeyId"], allow_alias=False, action="ListAliases")[0].key_id
        scope = f"aliases|{ctx.caller.account}|{ctx.region}|{key_id or ''}"
        after = self.markers.read(scope, p.get("Marker"))
        # the model allows 1000, KMS documents 1-100 (kms-semantics.md 7.9); fewer is always allowed
        limit = min(p.get("Limit", 50), 100)
        with self.core.store.read() as tx:
            rows = tx.list_aliases(ctx.caller.account, ctx.region, key_id, after, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        result: Result = {
            "Aliases": [
                {
                    "AliasName": a.name,
                    "AliasArn": self.core.alias_arn(ctx, a.name),
                    "TargetKeyId": a.target_key_id,
                    "CreationDate": a.created_at,
                    "LastUpdatedDate": a.updated_at,
                }
                for a in page
            ],
            "Truncated": more,
        }
        if more:
            result["NextMarker"] = self.markers.make(scope, page[-1].name)
        return result

    def _authorize_alias(self, ctx: RequestContext, action: str, name: str) -> None:
        account = ctx.caller.account
        self.core.authorizer.authorize_alias(ctx, action, self.core.alias_arn(ctx, name), account)

    def _existing(self, ctx: RequestContext, name: str) -> AliasRecord:
        with self.core.store.read() as tx:
            alias = tx.get_alias(ctx.caller.account, ctx.region, name)
        if alias is None:
            raise errors.NotFoundException(f"Alias {self.core.alias_arn(ctx, name)} is not found.")
        return alias
