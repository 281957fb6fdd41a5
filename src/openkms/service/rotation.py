"""EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations and
the automatic rotation run by the jobs runner (kms-semantics.md sections 5.7 and 7.3).

Rotation adds a material record and makes it current; old records are never deleted, so every
ciphertext ever produced keeps decrypting.
"""

from __future__ import annotations

from dataclasses import replace

from openkms import errors
from openkms.crypto.symmetric import generate_symmetric_material, new_material_id
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.keystate import StateRule, check_state
from openkms.service.pagination import Markers
from openkms.storage.base import KeyRecord, KeyState, MaterialRecord, MaterialState, Tx

DAY = 86400.0
DEFAULT_PERIOD_DAYS = 365
MAX_ON_DEMAND_ROTATIONS = 25
CONFLICT_WINDOW = 20 * 60.0


class Rotation:
    def __init__(self, core: Core, markers: Markers) -> None:
        self.core = core
        self.markers = markers

    def _rotatable(self, key: KeyRecord, rule: StateRule) -> None:
        arn = self.core.arn(key)
        check_state(rule, key.state, arn)
        if key.key_spec != "SYMMETRIC_DEFAULT":
            raise errors.UnsupportedOperationException(
                f"{arn} key spec {key.key_spec} does not support rotation."
            )
        if key.origin != "AWS_KMS":
            raise errors.UnsupportedOperationException(
                f"{arn} origin is {key.origin} which is not valid for this operation."
            )

    def enable_key_rotation(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="EnableKeyRotation")
        period = p.get("RotationPeriodInDays", DEFAULT_PERIOD_DAYS)
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            self._rotatable(current, StateRule.ROTATION_SETTING)
            self.core.update_key(
                tx,
                current,
                rotation_enabled=True,
                rotation_period_days=period,
                next_rotation_at=ctx.now + period * DAY,
            )
        return {}

    def disable_key_rotation(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="DisableKeyRotation")
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            self._rotatable(current, StateRule.ROTATION_SETTING)
            self.core.update_key(tx, current, rotation_enabled=False, next_rotation_at=None)
        return {}

    def get_key_rotation_status(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="GetKeyRotationStatus")
        self._rotatable(key, StateRule.ROTATION_STATUS)
        # A key pending deletion reports rotation off; CancelKeyDeletion restores the stored setting.
        enabled = key.rotation_enabled and key.state is not KeyState.PENDING_DELETION
        result: Result = {"KeyId": self.core.arn(key), "KeyRotationEnabled": enabled}
        if enabled:
            result["RotationPeriodInDays"] = key.rotation_period_days
            result["NextRotationDate"] = key.next_rotation_at
        return result

    def rotate_key_on_demand(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="RotateKeyOnDemand")
        arn = self.core.arn(key)
        check_state(StateRule.ROTATE_ON_DEMAND, key.state, arn)
        if key.key_spec != "SYMMETRIC_DEFAULT":
            raise errors.UnsupportedOperationException("")
        if key.origin not in ("AWS_KMS", "EXTERNAL"):
            raise errors.UnsupportedOperationException(
                f"{arn} origin is {key.origin} which is not valid for this operation."
            )
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.ROTATE_ON_DEMAND, current.state, arn)
            if current.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
                raise errors.LimitExceededException(
                    "The on-demand rotations limit has been reached for the given keyId. "
                    f"No more on-demand rotations can be performed for this key: {arn}"
                )
            if (
                current.rotation_enabled
                and current.next_rotation_at is not None
                and current.next_rotation_at - ctx.now < CONFLICT_WINDOW
            ):
                raise errors.ConflictException(
                    f"An automatic rotation of {arn} is in progress or due within 20 minutes."
                )
            count = current.on_demand_rotations + 1
            if current.origin == "EXTERNAL":
                self._promote_imported(tx, current, ctx.now, on_demand_rotations=count)
            else:
                self._add_material(tx, current, ctx.now, "ON_DEMAND", on_demand_rotations=count)
        return {"KeyId": arn}

    def _promote_imported(self, tx: Tx, key: KeyRecord, now: float, **changes: object) -> None:
        """On-demand rotation of an EXTERNAL key: the material staged by ImportKeyMaterial (ImportType
        NEW_KEY_MATERIAL, state PENDING_ROTATION) becomes current (kms-semantics.md section 7.3)."""
        staged = next(
            (
                m
                for m in tx.list_materials(key.account, key.key_id)
                if m.state is MaterialState.PENDING_ROTATION and m.ekt is not None
            ),
            None,
        )
        if staged is None:
            raise errors.KMSInvalidStateException(
                f"No available key material pending rotation for the key: {self.core.arn(key)}."
            )
        if key.current_material_id is not None:
            tx.set_material_state(key.account, key.key_id, key.current_material_id, MaterialState.NON_CURRENT)
        tx.replace_material(
            replace(staged, state=MaterialState.CURRENT, rotation_type="ON_DEMAND", rotation_date=now)
        )
        self.core.update_key(tx, key, current_material_id=staged.material_id, **changes)

    def list_key_rotations(self, ctx: RequestContext, p: Params) -> Result:
        key = self.core.resolve(ctx, p["KeyId"], allow_alias=False, action="ListKeyRotations")
        arn = self.core.arn(key)
        if key.key_spec != "SYMMETRIC_DEFAULT":
            raise errors.UnsupportedOperationException(
                f"{arn} key spec {key.key_spec} does not support rotation."
            )
        include_all = p.get("IncludeKeyMaterial", "ROTATIONS_ONLY") == "ALL_KEY_MATERIAL"
        scope = f"rotations|{arn}|{int(include_all)}"
        after = self.markers.read(scope, p.get("Marker"))
        limit = p.get("Limit", 100)
        with self.core.store.read() as tx:
            materials = tx.list_materials(key.account, key.key_id)
        entries = [m for m in materials if include_all or m.rotation_type is not None]
        start = int(after) if after is not None else 0
        page = entries[start : start + limit]
        more = start + limit < len(entries)
        rotations = []
        for m in page:
            entry: Result = {"KeyId": arn, "KeyMaterialId": m.material_id, "KeyMaterialState": m.state.value}
            if m.rotation_type is not None:
                entry["RotationType"] = m.rotation_type
                entry["RotationDate"] = m.rotation_date
            if m.import_state is not None:
                entry["ImportState"] = m.import_state
                if m.expiration_model is not None:
                    entry["ExpirationModel"] = m.expiration_model
                if m.valid_to is not None:
                    entry["ValidTo"] = m.valid_to
                if m.description is not None:
                    entry["KeyMaterialDescription"] = m.description
            rotations.append(entry)
        result: Result = {"Rotations": rotations, "Truncated": more}
        if more:
            result["NextMarker"] = self.markers.make(scope, str(start + limit))
        return result

    # --- automatic rotation ------------------------------------------------------------------------------
    def rotate_due_keys(self, now: float, limit: int = 100) -> list[KeyRecord]:
        """Rotate every enabled key whose rotation is due (called by the jobs runner)."""
        with self.core.store.read() as tx:
            due = tx.keys_due_for_rotation(now, limit)
        rotated: list[KeyRecord] = []
        for key in due:
            with self.core.changing() as tx:
                current = tx.get_key(key.account, key.region, key.key_id)
                if (
                    current is None
                    or current.state is not KeyState.ENABLED
                    or not current.rotation_enabled
                    or current.next_rotation_at is None
                    or current.next_rotation_at > now
                ):
                    continue
                period = current.rotation_period_days or DEFAULT_PERIOD_DAYS
                rotated.append(
                    self._add_material(tx, current, now, "AUTOMATIC", next_rotation_at=now + period * DAY)
                )
        return rotated

    def _add_material(
        self, tx: Tx, key: KeyRecord, now: float, rotation_type: str, **changes: object
    ) -> KeyRecord:
        material_id = new_material_id().hex()
        ekt, root_version = self.core.keyring.wrap_material(
            key.account, key.key_id, material_id, key.key_spec, generate_symmetric_material()
        )
        if key.current_material_id is not None:
            tx.set_material_state(key.account, key.key_id, key.current_material_id, MaterialState.NON_CURRENT)
        tx.insert_material(
            MaterialRecord(
                account=key.account,
                key_id=key.key_id,
                material_id=material_id,
                ekt=ekt,
                root_key_version=root_version,
                state=MaterialState.CURRENT,
                created_at=now,
                rotation_type=rotation_type,
                rotation_date=now,
            )
        )
        return self.core.update_key(tx, key, current_material_id=material_id, **changes)
