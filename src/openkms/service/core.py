"""Shared plumbing of the service modules: dependencies, key resolution, ARNs, change notification."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from openkms import errors
from openkms.clock import Clock
from openkms.identifiers import alias_arn, key_arn, parse_key_ref
from openkms.keyring.keyring import Keyring
from openkms.service.authorization import Authorizer, GrantSource, PrincipalSource
from openkms.service.context import RequestContext
from openkms.service.directory import Directory
from openkms.service.grant_tokens import GrantTokens
from openkms.service.key_pairs import KeyPairCache
from openkms.service.managed_keys import ensure_managed_key, is_managed_alias
from openkms.storage.base import KeyRecord, MaterialRecord, Store, Tx

Params = Mapping[str, Any]
Result = dict[str, Any]
Handler = Callable[[RequestContext, Params], Result]

DECRYPT_KEY_NOT_FOUND = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)


@dataclass
class Core:
    """What every service module needs; built once per process by ``openkms.app``."""

    store: Store
    keyring: Keyring
    directory: Directory
    clock: Clock
    partition: str
    key_pairs: KeyPairCache = field(default_factory=KeyPairCache)  # loaded asymmetric private keys
    principals: PrincipalSource | None = None  # None: principals from access key ARNs (authorization.py)
    grants: GrantSource | None = None  # None: no grants
    authorizer: Authorizer = field(init=False)

    def __post_init__(self) -> None:
        self.authorizer = Authorizer(self.partition, self.directory, self.principals, self.grants)

    def use_grants(self, grants: GrantSource) -> None:
        """Plug in the grant store (built after the core, since it needs it)."""
        self.grants = grants
        self.authorizer.grants = grants

    def use_principals(self, principals: PrincipalSource) -> None:
        """Plug in the identity registry (users, roles and their identity policies)."""
        self.principals = principals
        self.authorizer.principals = principals

    # --- identifiers -------------------------------------------------------------------------------
    def arn(self, key: KeyRecord) -> str:
        return key_arn(self.partition, key.region, key.account, key.key_id)

    def alias_arn(self, ctx: RequestContext, name: str, account: str | None = None) -> str:
        return alias_arn(self.partition, ctx.region, account or ctx.caller.account, name)

    def lookup(
        self, ctx: RequestContext, value: str, *, allow_alias: bool, action: str
    ) -> tuple[KeyRecord, str | None]:
        """Turn a KeyId parameter into the key it names (kms-semantics.md section 2.2), without
        authorization; also returns the alias name when the caller named the key by alias."""
        ref = parse_key_ref(value, partition=self.partition, region=ctx.region, allow_alias=allow_alias)
        account = ref.account or ctx.caller.account
        foreign = account != ctx.caller.account
        if ref.alias_name is not None:
            alias = self.directory.alias(account, ctx.region, ref.alias_name)
            if alias is None and not foreign and is_managed_alias(ref.alias_name):
                # AWS managed keys are created on first use (section 2.1; docs/authorization.md)
                alias = ensure_managed_key(
                    self.store, self.keyring, self.partition, account, ctx.region, ref.alias_name, ctx.now
                )
            if alias is None:
                alias_arn_ = self.alias_arn(ctx, ref.alias_name, account)
                if foreign:  # never reveal what another account has
                    raise access_denied(ctx, action, alias_arn_, "no resource-based policy allows")
                raise errors.NotFoundException(f"Alias {alias_arn_} is not found.")
            key_id = alias.target_key_id
        else:
            assert ref.key_id is not None
            key_id = ref.key_id
        arn = key_arn(self.partition, ctx.region, account, key_id)
        ctx.resources.append(arn)  # audited as a resource even when the call then fails
        self.catch_up_grants(ctx)
        key = self.directory.key(account, ctx.region, key_id)
        if key is None:
            if foreign:  # a missing key of another account is indistinguishable from a forbidden one
                raise access_denied(ctx, action, arn, "no resource-based policy allows")
            raise errors.NotFoundException(f"Key '{arn}' does not exist")
        return key, ref.alias_name

    def resolve(
        self,
        ctx: RequestContext,
        value: str,
        *,
        allow_alias: bool,
        action: str,
        permission: str | None = None,
    ) -> KeyRecord:
        """Resolve a KeyId and authorize ``permission`` (default: ``action``) on the key (section 6.1)."""
        key, alias = self.lookup(ctx, value, allow_alias=allow_alias, action=permission or action)
        self.authorizer.authorize_key(ctx, permission or action, key, request_alias=alias)
        return key

    # --- grant tokens ------------------------------------------------------------------------------
    @cached_property
    def grant_tokens(self) -> GrantTokens:
        return GrantTokens(self.keyring, self.directory)

    def catch_up_grants(self, ctx: RequestContext) -> None:
        """Before authorizing a key: the grants the request's tokens name count at once, also when they
        were made on another node this one has not heard from yet (``GrantTokens.catch_up``)."""
        tokens = ctx.params.get("GrantTokens")
        if tokens:
            self.grant_tokens.catch_up(tokens)

    def check_grant_tokens(self, params: Params) -> None:
        """``GrantTokens`` (<= 10, counted by the model): each must be authentic and name a grant that
        still exists, or the request fails with InvalidGrantTokenException (section 5.9). Permissions come
        from the stored grants, never from a token."""
        tokens = params.get("GrantTokens")
        if tokens:
            self.grant_tokens.verify(tokens)

    # --- materials ---------------------------------------------------------------------------------
    def material(self, key: KeyRecord, material_id: str) -> MaterialRecord | None:
        return self.directory.materials(key.account, key.key_id).get(material_id)

    def secret_of(self, key: KeyRecord, material: MaterialRecord) -> bytes:
        if material.ekt is None:
            raise errors.KMSInvalidStateException(f"{self.arn(key)} is pending import.")
        return self.keyring.unwrap_material(
            key.account,
            key.key_id,
            material.material_id,
            key.key_spec,
            material.ekt,
            material.root_key_version,
        )

    # --- writes ------------------------------------------------------------------------------------
    @contextmanager
    def changing(self) -> Iterator[Tx]:
        """A transaction that changes existing state: every worker's caches are dropped after commit."""
        with self.store.tx() as tx:
            yield tx
            tx.bump_generation()
        self.directory.changed()

    def update_key(self, tx: Tx, key: KeyRecord, **changes: Any) -> KeyRecord:
        from dataclasses import replace

        current = tx.get_key(key.account, key.region, key.key_id)
        if current is None:
            raise errors.NotFoundException(f"Key '{self.arn(key)}' does not exist")
        return tx.update_key(replace(current, **changes), expected_version=current.version)

    def reload(self, tx: Tx, key: KeyRecord) -> KeyRecord:
        current = tx.get_key(key.account, key.region, key.key_id)
        if current is None:
            raise errors.NotFoundException(f"Key '{self.arn(key)}' does not exist")
        return current


def access_denied(ctx: RequestContext, action: str, resource: str, reason: str) -> errors.KMSError:
    return errors.AccessDeniedException(
        f"User: {ctx.caller.principal_arn} is not authorized to perform: kms:{action} on resource: "
        f"{resource} because {reason} the kms:{action} action"
    )


def reject_recipient(params: Params) -> None:
    """The attestation-bound ``Recipient`` parameter is deferred; never ignore it silently."""
    if "Recipient" in params:
        raise errors.UnsupportedOperationException(
            "The Recipient parameter (attested enclave requests) is not supported by openkms yet."
        )
