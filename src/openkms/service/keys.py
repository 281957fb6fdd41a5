"""Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription, Enable/DisableKey,
Schedule/CancelKeyDeletion, GetKeyPolicy, ListKeyPolicies, and the KeyMetadata shape (section 3.4)."""

from __future__ import annotations

import time
from typing import Any

from openkms import errors
from openkms.authz.model import ConditionValue, Grant
from openkms.crypto.symmetric import new_material_id
from openkms.identifiers import new_key_id
from openkms.service import condition_keys
from openkms.service.authorization import locks_out
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.imports import IMPORTABLE_SPECS, import_metadata, is_imported
from openkms.service.key_material import new_material
from openkms.service.keyspecs import ALGORITHM_LIST_MEMBER, SPECS, SUPPORTED_SPECS
from openkms.service.keystate import StateRule, check_state
from openkms.service.pagination import Markers
from openkms.service.policy_documents import check_policy, check_policy_name, default_policy
from openkms.service.regions import check_spec_region
from openkms.service.tags import parse_tags
from openkms.storage.base import KeyRecord, KeyState, MaterialRecord, MaterialState, TagRecord, Tx

DAY = 86400.0
MAX_KEYS_PER_REGION = 100_000
_RECOUNT_SECONDS = 5.0


def check_description(text: str) -> None:
    """The model puts no character constraint on Description, but PostgreSQL text cannot hold NUL;
    refusing it on every backend keeps SQLite and PostgreSQL deployments answering alike."""
    if "\x00" in text:
        raise errors.ValidationException("Description cannot contain the NUL character (U+0000).")


class Keys:
    def __init__(self, core: Core, markers: Markers) -> None:
        self.core = core
        self.markers = markers
        # (account, region) -> (keys counted + created here since, when counted): see _keys_in_region
        self._key_counts: dict[tuple[str, str], tuple[int, float]] = {}

    # --- KeyMetadata ---------------------------------------------------------------------------------
    def metadata(self, key: KeyRecord) -> dict[str, Any]:
        spec = SPECS[key.key_spec]
        md: dict[str, Any] = {
            "AWSAccountId": key.account,
            "KeyId": key.key_id,
            "Arn": self.core.arn(key),
            "CreationDate": key.created_at,
            "Enabled": key.state is KeyState.ENABLED,
            "Description": key.description,
            "KeyUsage": key.key_usage,
            "KeyState": key.state.value,
            "Origin": key.origin,
            "KeyManager": key.key_manager,
            "KeySpec": key.key_spec,
            "MultiRegion": key.multi_region,
        }
        if key.state is KeyState.PENDING_DELETION and key.deletion_date is not None:
            md["DeletionDate"] = key.deletion_date
        if spec.legacy_name:
            md["CustomerMasterKeySpec"] = key.key_spec
        md[ALGORITHM_LIST_MEMBER[key.key_usage]] = list(spec.usages[key.key_usage])
        if key.current_material_id is not None and key.key_spec == "SYMMETRIC_DEFAULT":
            md["CurrentKeyMaterialId"] = key.current_material_id
        if key.origin == "EXTERNAL":
            md.update(import_metadata(self.core, key))
        return md

    # --- CreateKey -------------------------------------------------------------------------------------
    def create_key(self, ctx: RequestContext, p: Params) -> Result:
        # kms:CreateKey (and kms:TagResource when tagging) on "*": identity policies only (section 6.1)
        requested = condition_keys.create_key_keys(p)
        self.core.authorizer.authorize_account(ctx, "CreateKey", requested)
        if "Tags" in p:
            self.core.authorizer.authorize_account(ctx, "TagResource", requested)
        spec = p.get("KeySpec")
        legacy = p.get("CustomerMasterKeySpec")
        if spec is not None and legacy is not None and spec != legacy:
            raise errors.ValidationException(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
                "CustomerMasterKeySpec is deprecated."
            )
        spec = spec or legacy or "SYMMETRIC_DEFAULT"
        usage = p.get("KeyUsage")
        if usage is None:
            if spec != "SYMMETRIC_DEFAULT":
                raise errors.ValidationException(
                    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
                )
            usage = "ENCRYPT_DECRYPT"
        if usage not in SPECS[spec].usages:
            raise errors.ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
        origin = p.get("Origin", "AWS_KMS")
        if origin in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE") or "CustomKeyStoreId" in p or "XksKeyId" in p:
            raise errors.CustomKeyStoreNotFoundException("Custom key stores are not available in openkms.")
        check_spec_region(spec, ctx.region)
        if spec not in SUPPORTED_SPECS:
            raise errors.UnsupportedOperationException(
                f"KeySpec {spec} is not supported by this openkms release."
            )
        if origin == "EXTERNAL" and spec not in IMPORTABLE_SPECS:
            raise errors.UnsupportedOperationException(
                f"KeySpec {spec} does not support Origin EXTERNAL (imported key material)."
            )
        if p.get("MultiRegion"):
            raise errors.UnsupportedOperationException(
                "Multi-Region keys are not supported by this openkms release."
            )
        policy = p.get("Policy")
        if policy is None:
            policy = default_policy(self.core.partition, ctx.caller.account)
        else:
            check_policy(policy)
        check_description(p.get("Description", ""))
        tags = parse_tags(p.get("Tags", []))

        key_id = new_key_id()
        external = origin == "EXTERNAL"  # no material until ImportKeyMaterial (service/imports.py)
        material_id = None if external else new_material_id().hex()
        key = KeyRecord(
            account=ctx.caller.account,
            region=ctx.region,
            key_id=key_id,
            created_at=ctx.now,
            description=p.get("Description", ""),
            key_spec=spec,
            key_usage=usage,
            origin=origin,
            key_manager="CUSTOMER",
            state=KeyState.PENDING_IMPORT if external else KeyState.ENABLED,
            policy=policy,
            current_material_id=material_id,
        )
        # Only a policy the caller provides is checked (CreateKey ``Policy`` doc): the default policy
        # delegates to the account, whose root can always change it, so it cannot lock the key.
        if "Policy" in p and not p.get("BypassPolicyLockoutSafetyCheck"):
            self._lockout_check(ctx, key, policy, tags)
        material = None
        if material_id is not None:
            secret, public_key = new_material(spec)  # RSA: up to seconds (CreateKey runs on a thread)
            ekt, root_version = self.core.keyring.wrap_material(
                ctx.caller.account, key_id, material_id, spec, secret
            )
            material = MaterialRecord(
                account=key.account,
                key_id=key_id,
                material_id=material_id,
                ekt=ekt,
                root_key_version=root_version,
                state=MaterialState.CURRENT,
                created_at=ctx.now,
                public_key=public_key,
            )
        if self._keys_in_region(key.account, key.region) >= MAX_KEYS_PER_REGION:
            raise errors.LimitExceededException("The number of keys in this Region has reached its limit.")
        with self.core.store.tx() as tx:
            tx.insert_key(key)
            if material is not None:
                tx.insert_material(material)
            if tags:
                tx.put_tags(key.account, key.region, key_id, tags)
        return {"KeyMetadata": self.metadata(key)}

    # --- reads -----------------------------------------------------------------------------------------
    def describe_key(self, ctx: RequestContext, p: Params) -> Result:
        self.core.check_grant_tokens(p)
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=True, action="DescribeKey")
        return {"KeyMetadata": self.metadata(key)}

    def list_keys(self, ctx: RequestContext, p: Params) -> Result:
        self.core.authorizer.authorize_account(ctx, "ListKeys")
        scope = f"keys|{ctx.caller.account}|{ctx.region}"
        after = self.markers.read(scope, p.get("Marker"))
        limit = p.get("Limit", 100)
        with self.core.store.read() as tx:
            rows = tx.list_keys(ctx.caller.account, ctx.region, after, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        result: Result = {
            "Keys": [{"KeyId": k.key_id, "KeyArn": self.core.arn(k)} for k in page],
            "Truncated": more,
        }
        if more:
            result["NextMarker"] = self.markers.make(scope, page[-1].key_id)
        return result

    def get_key_policy(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="GetKeyPolicy")
        name = p.get("PolicyName", "default")
        if name != "default":  # no key has an AWS_RAM policy here (section 6.2)
            raise errors.NotFoundException(f"No such policy exists: {name}")
        return {"Policy": key.policy, "PolicyName": "default"}

    def put_key_policy(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="PutKeyPolicy")
        check_policy_name(p.get("PolicyName", "default"))
        policy = p["Policy"]
        check_policy(policy)
        if not p.get("BypassPolicyLockoutSafetyCheck"):
            self._lockout_check(ctx, key, policy)
        with self.core.changing() as tx:
            self.core.update_key(tx, key, policy=policy)
        return {}

    def _keys_in_region(self, account: str, region: str) -> int:
        """The key quota's count, approximate by design: counted in a read transaction outside the write
        lock (so concurrent creates do not queue behind it) and then kept locally, re-counted every few
        seconds and on every create near the limit. Counting on every create cost a scan per CreateKey;
        a burst on several workers or nodes may overshoot the quota by a few keys."""
        now = time.monotonic()
        cached = self._key_counts.get((account, region))
        if cached is None or now - cached[1] > _RECOUNT_SECONDS or cached[0] >= MAX_KEYS_PER_REGION - 1000:
            with self.core.store.read() as tx:
                count = tx.count_keys(account, region)
            cached = (count, now)
        self._key_counts[(account, region)] = (cached[0] + 1, cached[1])  # this create, if it succeeds
        return cached[0]

    def _lockout_check(
        self, ctx: RequestContext, key: KeyRecord, policy: str, tags: list[TagRecord] | None = None
    ) -> None:
        """Section 6.7: the new policy must let the caller call PutKeyPolicy on the key later."""
        extra: dict[str, ConditionValue] = {
            "kms:policyname": "default",
            "kms:bypasspolicylockoutsafetycheck": False,
        }
        key_keys = None
        grants: tuple[Grant, ...] | None = None
        if tags is not None:  # CreateKey: the key does not exist yet, its tags are the request's
            key_keys = condition_keys.key_keys(key, {t.key: t.value for t in tags}, ())
            grants = ()  # ... and it has no grants (grants never count here anyway, section 6.7)
        request = self.core.authorizer.key_request(
            ctx, "PutKeyPolicy", key, policy=policy, extra=extra, key_keys=key_keys, grants=grants
        )
        if locks_out(request):
            raise errors.MalformedPolicyDocumentException(
                "The new key policy will not allow you to update the key policy in the future."
            )

    def list_key_policies(self, ctx: RequestContext, p: Params) -> Result:
        self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="ListKeyPolicies")
        return {"PolicyNames": ["default"], "Truncated": False}

    # --- state changes ---------------------------------------------------------------------------------
    def update_key_description(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="UpdateKeyDescription")
        check_state(StateRule.METADATA, key.state, self.core.arn(key))
        check_description(p["Description"])
        with self.core.changing() as tx:
            self.core.update_key(tx, key, description=p["Description"])
        return {}

    def enable_key(self, ctx: RequestContext, p: Params) -> Result:
        return self._set_enabled(ctx, p, enabled=True)

    def disable_key(self, ctx: RequestContext, p: Params) -> Result:
        return self._set_enabled(ctx, p, enabled=False)

    def _set_enabled(self, ctx: RequestContext, p: Params, *, enabled: bool) -> Result:
        key = self.core.resolve(
            ctx, p["KeyId"], allow_alias=False, action="EnableKey" if enabled else "DisableKey"
        )
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.ENABLE_DISABLE, current.state, self.core.arn(key))
            target = KeyState.ENABLED if enabled else KeyState.DISABLED
            if current.state is not target:
                self.core.update_key(tx, current, state=target)
        return {}

    def schedule_key_deletion(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="ScheduleKeyDeletion")
        arn = self.core.arn(key)
        window = p.get("PendingWindowInDays", 30)
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.SCHEDULE_DELETION, current.state, arn)
            if not 7 <= window <= 30:
                # [unverified] wording: AWS only documents the 7-30 range; pinned by a test.
                raise errors.ValidationException(
                    f"PendingWindowInDays should be between 7 and 30, but it is {window}"
                )
            deletion_date = ctx.now + window * DAY
            self.core.update_key(
                tx,
                current,
                state=KeyState.PENDING_DELETION,
                deletion_date=deletion_date,
                pending_window_days=window,
            )
        return {
            "KeyId": arn,
            "DeletionDate": deletion_date,
            "KeyState": KeyState.PENDING_DELETION.value,
            "PendingWindowInDays": window,
        }

    def cancel_key_deletion(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="CancelKeyDeletion")
        arn = self.core.arn(key)
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.CANCEL_DELETION, current.state, arn)
            # A cancelled deletion lands in Disabled, except for an EXTERNAL key without usable material
            # (never imported, or deleted / expired while pending deletion): it goes back to PendingImport.
            # Disabled there would let EnableKey report an Enabled key that every operation refuses.
            state = KeyState.DISABLED
            if current.origin == "EXTERNAL" and not self._has_usable_material(tx, current):
                state = KeyState.PENDING_IMPORT
            self.core.update_key(tx, current, state=state, deletion_date=None, pending_window_days=None)
        return {"KeyId": arn}

    @staticmethod
    def _has_usable_material(tx: Tx, key: KeyRecord) -> bool:
        """The key has material and all of it, except staged (PENDING_ROTATION) material, is imported."""
        materials = [
            m
            for m in tx.list_materials(key.account, key.key_id)
            if m.state is not MaterialState.PENDING_ROTATION
        ]
        return bool(materials) and all(is_imported(m) for m in materials)

    # --- background ------------------------------------------------------------------------------------
    def delete_due_keys(self, now: float, limit: int = 100) -> list[KeyRecord]:
        """Delete keys whose waiting period is over (called by the jobs runner). Returns what was deleted."""
        with self.core.store.read() as tx:
            due = tx.keys_due_for_deletion(now, limit)
        deleted: list[KeyRecord] = []
        for key in due:
            with self.core.changing() as tx:
                current = tx.get_key(key.account, key.region, key.key_id)
                if current is None or current.state is not KeyState.PENDING_DELETION:
                    continue
                if current.deletion_date is None or current.deletion_date > now:
                    continue
                tx.delete_key(key.account, key.region, key.key_id)
            self.core.keyring.evict(key.account, key.key_id)
            deleted.append(key)
        return deleted
