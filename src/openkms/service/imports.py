"""Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial and the expiry
of imported material by the jobs runner (kms-semantics.md sections 5.3, 5.9 and 7.4).

Import tokens are stateless: sealed (AES-256-GCM) under a sub-key of the root key, they carry the
wrapping private key, the key they are for, the wrapping algorithm and their expiry, so any node with
the root key accepts them. Imported material is stored wrapped like generated material; deleting it
keeps the material record (its id, expiration model, description) with ``ekt = None``.
"""

from __future__ import annotations

from dataclasses import replace

from openkms import errors
from openkms.crypto import asymmetric, key_import
from openkms.crypto.errors import InvalidCiphertextError, UnwrapError
from openkms.keyring.keyring import KeyringError
from openkms.service.context import RequestContext
from openkms.service.core import Core, Params, Result
from openkms.service.keystate import StateRule, check_state
from openkms.service.wrapping_rules import check_wrapping
from openkms.storage.base import KeyRecord, KeyState, MaterialRecord, MaterialState, Tx

DAY = 86400.0
TOKEN_LIFETIME = DAY
MAX_VALID_TO = 365 * DAY
IMPORTED = "IMPORTED"
PENDING_IMPORT = "PENDING_IMPORT"
EXPIRES = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"

# Key specs that accept imported material (kms-semantics.md section 3.1, CreateKey step 5).
IMPORTABLE_SPECS = frozenset(
    {"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "RSA_2048", "RSA_3072", "RSA_4096"}
    | {"ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"}
    | {"SM2"}  # China Regions only (CreateKey checks the Region first)
)
# Imported HMAC key lengths in bytes (importing-keys-conceptual.html).
HMAC_LENGTHS = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128), "HMAC_512": (64, 128)}
_TOKEN_PURPOSE = "import-token-v1"  # noqa: S105 (a sealing purpose label, not a secret)


def _token_binding(account: str, key_id: str) -> bytes:
    """An import token opens only for the key it was issued for (length-prefixed: fields cannot shift)."""
    a, k = account.encode(), key_id.encode()
    return b"".join((len(a).to_bytes(4, "big"), a, len(k).to_bytes(4, "big"), k))


def _refuse_second_pending(arn: str, material_id: str, materials: list[MaterialRecord]) -> None:
    """Only one imported material may be pending rotation at a time (kms-semantics.md section 7.4)."""
    pending = [
        m
        for m in materials
        if m.state is MaterialState.PENDING_ROTATION and m.ekt is not None and m.material_id != material_id
    ]
    if pending:
        raise errors.KMSInvalidStateException(
            f"New key material (id: {material_id}) cannot be imported into KMS key {arn}, because "
            f"another key material (id: {pending[0].material_id}) is pending rotation."
        )


def is_imported(material: MaterialRecord) -> bool:
    """Usable imported material (not deleted, not expired, not merely staged for rotation)."""
    return material.ekt is not None and material.state is not MaterialState.PENDING_ROTATION


def import_metadata(core: Core, key: KeyRecord) -> Result:
    """``ExpirationModel`` and ``ValidTo`` of an EXTERNAL key's KeyMetadata: present only while it has
    imported material; ``ValidTo`` is the earliest expiry among its materials (kms-semantics.md 3.4)."""
    materials = [m for m in core.directory.materials(key.account, key.key_id).values() if is_imported(m)]
    if not materials:
        return {}
    expiring = [m.valid_to for m in materials if m.valid_to is not None]
    if not expiring:
        return {"ExpirationModel": DOES_NOT_EXPIRE}
    return {"ExpirationModel": EXPIRES, "ValidTo": min(expiring)}


class Imports:
    def __init__(self, core: Core) -> None:
        self.core = core

    def _external(self, ctx: RequestContext, key_id: str, action: str, rule: StateRule) -> KeyRecord:
        key = self.core.resolve(ctx, key_id, allow_alias=False, action=action)
        arn = self.core.arn(key)
        if key.origin != "EXTERNAL":
            raise errors.UnsupportedOperationException(
                f"{arn} origin is {key.origin} which is not valid for this operation."
            )
        check_state(rule, key.state, arn)
        return key

    # --- GetParametersForImport ---------------------------------------------------------------------
    def get_parameters_for_import(self, ctx: RequestContext, p: Params) -> Result:
        key = self._external(ctx, p["KeyId"], "GetParametersForImport", StateRule.IMPORT_PARAMETERS)
        algorithm, spec = p["WrappingAlgorithm"], p["WrappingKeySpec"]
        check_wrapping(ctx.region, key.key_spec, algorithm, spec)
        private, public = key_import.generate_wrapping_key(spec)  # seconds for RSA_4096: runs on a thread
        expires_at = ctx.now + TOKEN_LIFETIME
        token = key_import.ImportToken(
            key.account, key.region, key.key_id, algorithm, spec, expires_at, private
        )
        sealed = self.core.keyring.seal_token(
            _TOKEN_PURPOSE, key_import.encode_token(token), _token_binding(key.account, key.key_id)
        )
        return {
            "KeyId": self.core.arn(key),
            "ImportToken": sealed,
            "PublicKey": public,
            "ParametersValidTo": expires_at,
        }

    # --- ImportKeyMaterial --------------------------------------------------------------------------
    def import_key_material(self, ctx: RequestContext, p: Params) -> Result:
        key = self._external(ctx, p["KeyId"], "ImportKeyMaterial", StateRule.IMPORT_MATERIAL)
        arn = self.core.arn(key)
        symmetric = key.key_spec == "SYMMETRIC_DEFAULT"
        model, valid_to = self._expiration(ctx, p)
        import_type = p.get("ImportType")
        if not symmetric:
            for member in ("ImportType", "KeyMaterialId", "KeyMaterialDescription"):
                if member in p:
                    raise errors.ValidationException(
                        f"{member} is only valid for symmetric encryption keys; {arn} has key spec "
                        f"{key.key_spec}."
                    )
        if import_type == "NEW_KEY_MATERIAL" and "KeyMaterialId" in p:
            raise errors.ValidationException(
                "You cannot specify a KeyMaterialId with ImportType NEW_KEY_MATERIAL."
            )
        token = self._open_token(ctx, key, p["ImportToken"])
        try:
            material = key_import.unwrap_material(
                token.wrapping_algorithm, token.wrapping_private_pkcs8, p["EncryptedKeyMaterial"]
            )
        except InvalidCiphertextError:
            raise errors.InvalidCiphertextException(
                "The encrypted key material could not be decrypted with the wrapping key of this import "
                f"token and wrapping algorithm {token.wrapping_algorithm}."
            ) from None
        material = self._checked_material(key, material)
        material_id = key_import.material_id(
            self.core.keyring.identity_key(), key.account, key.key_id, material
        )
        ekt, root_version = self.core.keyring.wrap_material(
            key.account, key.key_id, material_id, key.key_spec, material
        )
        public_key = None
        if key.key_spec not in ("SYMMETRIC_DEFAULT", *HMAC_LENGTHS):
            public_key = asymmetric.load(key.key_spec, material).public_der
        imported = {
            "ekt": ekt,
            "root_key_version": root_version,
            "import_state": IMPORTED,
            "expiration_model": model,
            "valid_to": valid_to,
        }
        description = p.get("KeyMaterialDescription")
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.IMPORT_MATERIAL, current.state, arn)
            materials = tx.list_materials(key.account, key.key_id)
            if import_type is None:
                import_type = "EXISTING_KEY_MATERIAL" if materials else "NEW_KEY_MATERIAL"
            record = next((m for m in materials if m.material_id == material_id), None)
            if not materials:
                if import_type == "EXISTING_KEY_MATERIAL":
                    raise errors.IncorrectKeyMaterialException(
                        f"No key material was ever imported into {arn}: use ImportType NEW_KEY_MATERIAL."
                    )
                tx.insert_material(
                    MaterialRecord(
                        account=key.account,
                        key_id=key.key_id,
                        material_id=material_id,
                        state=MaterialState.CURRENT,
                        created_at=ctx.now,
                        public_key=public_key,
                        description=description,
                        **imported,  # type: ignore[arg-type]
                    )
                )
                current = self.core.update_key(tx, current, current_material_id=material_id)
            elif import_type == "NEW_KEY_MATERIAL":
                self._stage_new(tx, ctx, current, materials, record, material_id, description, imported)
            else:
                given = p.get("KeyMaterialId")
                if record is None or (given is not None and given != material_id):
                    raise errors.IncorrectKeyMaterialException(
                        f"The key material does not match the key material previously imported into {arn}."
                    )
                if record.state is MaterialState.PENDING_ROTATION and record.ekt is None:
                    # Re-importing deleted staged material stages it again: at most one material may wait
                    # for RotateKeyOnDemand, as for NEW_KEY_MATERIAL (kms-semantics.md 7.4).
                    _refuse_second_pending(arn, material_id, materials)
                changes = dict(imported)
                if description is not None:
                    changes["description"] = description
                record = replace(record, **changes)  # type: ignore[arg-type]
                tx.replace_material(record)
                materials = [record if m.material_id == material_id else m for m in materials]
            if current.state is KeyState.PENDING_IMPORT and all(
                is_imported(m) for m in materials if m.state is not MaterialState.PENDING_ROTATION
            ):
                self.core.update_key(tx, current, state=KeyState.ENABLED)
        return {"KeyId": arn, "KeyMaterialId": material_id}

    def _stage_new(
        self,
        tx: Tx,
        ctx: RequestContext,
        key: KeyRecord,
        materials: list[MaterialRecord],
        record: MaterialRecord | None,
        material_id: str,
        description: str | None,
        imported: dict[str, object],
    ) -> None:
        """NEW_KEY_MATERIAL into a key that has material: staged as PENDING_ROTATION for RotateKeyOnDemand."""
        arn = self.core.arn(key)
        if record is not None:
            raise errors.IncorrectKeyMaterialException(
                f"This key material was already imported into {arn}: use ImportType EXISTING_KEY_MATERIAL."
            )
        if key.state is KeyState.PENDING_IMPORT:
            raise errors.KMSInvalidStateException(f"{arn} is pending import.")
        _refuse_second_pending(arn, material_id, materials)
        tx.insert_material(
            MaterialRecord(
                account=key.account,
                key_id=key.key_id,
                material_id=material_id,
                state=MaterialState.PENDING_ROTATION,
                created_at=ctx.now,
                description=description,
                **imported,  # type: ignore[arg-type]
            )
        )

    def _expiration(self, ctx: RequestContext, p: Params) -> tuple[str, float | None]:
        model = p.get("ExpirationModel", EXPIRES)
        valid_to = p.get("ValidTo")
        if model == EXPIRES:
            if valid_to is None:
                raise errors.ValidationException(
                    "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
                )
            if valid_to <= ctx.now:
                raise errors.ValidationException("ValidTo must be a date and time in the future.")
            if valid_to > ctx.now + MAX_VALID_TO:
                raise errors.ValidationException("ValidTo cannot be more than 365 days from now.")
            return model, float(valid_to)
        if valid_to is not None:
            raise errors.ValidationException(
                "ValidTo must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
            )
        return model, None

    def _open_token(self, ctx: RequestContext, key: KeyRecord, blob: bytes) -> key_import.ImportToken:
        try:
            token = key_import.decode_token(
                self.core.keyring.open_token(_TOKEN_PURPOSE, blob, _token_binding(key.account, key.key_id))
            )
        except (KeyringError, UnwrapError):
            # Tampered, from another deployment, or issued for another key (the AAD names the key).
            raise errors.InvalidImportTokenException(
                f"The import token is invalid or was not issued for {self.core.arn(key)}."
            ) from None
        if (token.account, token.region, token.key_id) != (key.account, key.region, key.key_id):
            raise errors.InvalidImportTokenException(
                f"The import token is invalid or was not issued for {self.core.arn(key)}."
            )
        if ctx.now > token.expires_at:
            raise errors.ExpiredImportTokenException(
                "The import token has expired. Call GetParametersForImport for a new public key and token."
            )
        return token

    def _checked_material(self, key: KeyRecord, material: bytes) -> bytes:
        spec = key.key_spec
        if spec == "SYMMETRIC_DEFAULT":
            ok = len(material) == 32
        elif spec in HMAC_LENGTHS:
            low, high = HMAC_LENGTHS[spec]
            ok = low <= len(material) <= high
        else:
            canonical = key_import.canonical_private_key(spec, material)
            if canonical is not None:
                return canonical
            ok = False
        if not ok:
            raise errors.IncorrectKeyMaterialException(
                f"The key material is not valid for key spec {spec} of {self.core.arn(key)}."
            )
        return material

    # --- DeleteImportedKeyMaterial ------------------------------------------------------------------
    def delete_imported_key_material(self, ctx: RequestContext, p: Params) -> Result:
        key = self._external(ctx, p["KeyId"], "DeleteImportedKeyMaterial", StateRule.DELETE_IMPORTED)
        arn = self.core.arn(key)
        with self.core.changing() as tx:
            current = self.core.reload(tx, key)
            check_state(StateRule.DELETE_IMPORTED, current.state, arn)
            material_id = p.get("KeyMaterialId", current.current_material_id)
            if material_id is None:  # nothing was ever imported: no effect
                return {"KeyId": arn}
            record = tx.get_material(key.account, key.key_id, material_id)
            if record is None:
                raise errors.NotFoundException(f"Key material {material_id} of {arn} does not exist.")
            self._erase(tx, current, record)
        self.core.keyring.evict(key.account, key.key_id)
        return {"KeyId": arn, "KeyMaterialId": material_id}

    def _erase(self, tx: Tx, key: KeyRecord, record: MaterialRecord) -> None:
        tx.replace_material(
            replace(record, ekt=None, import_state=PENDING_IMPORT, expiration_model=None, valid_to=None)
        )
        # Deleting staged (PENDING_ROTATION) material leaves the key usable; anything else makes it unusable
        # until the same material is imported again. A key pending deletion keeps its state.
        if record.state is not MaterialState.PENDING_ROTATION and key.state in (
            KeyState.ENABLED,
            KeyState.DISABLED,
        ):
            self.core.update_key(tx, key, state=KeyState.PENDING_IMPORT)

    # --- expiry (jobs runner) -------------------------------------------------------------------------
    def expire_due_materials(self, now: float, limit: int = 100) -> list[KeyRecord]:
        """Delete imported material whose ValidTo has passed; return the keys affected (one per material)."""
        with self.core.store.read() as tx:
            due = tx.materials_due_for_expiry(now, limit)
        expired: list[KeyRecord] = []
        for key, material in due:
            with self.core.changing() as tx:
                record = tx.get_material(material.account, material.key_id, material.material_id)
                current = tx.get_key(key.account, key.region, key.key_id)
                if record is None or current is None or current.origin != "EXTERNAL":
                    continue
                if record.ekt is None or record.valid_to is None or record.valid_to > now:
                    continue
                self._erase(tx, current, record)
            self.core.keyring.evict(key.account, key.key_id)
            expired.append(current)
        return expired
