"""The service facade: every KMS operation this build implements, by its AWS name.

``_TABLE`` is the single table the API edge dispatches through; an operation of the service model
that is missing here answers UnsupportedOperationException naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from openkms.service.aliases import Aliases
from openkms.service.core import Core, Handler
from openkms.service.credentials import Credentials
from openkms.service.crypto_ops import CryptoOps
from openkms.service.data_key_pairs import DataKeyPairs
from openkms.service.grants import Grants
from openkms.service.identities import Identities
from openkms.service.imports import Imports
from openkms.service.key_usage import KeyUsage, KeyUsageSource
from openkms.service.keys import Keys
from openkms.service.mac_ops import MacOps
from openkms.service.pagination import Markers
from openkms.service.regions import is_china
from openkms.service.rotation import Rotation
from openkms.service.signing_ops import SigningOps
from openkms.service.tags import Tags
from openkms.storage.base import KeyRecord


@dataclass(frozen=True)
class Operation:
    handler: Handler
    inline: bool
    # May run SM2 arithmetic (pure Python, milliseconds per call). SM2 keys exist only in China Regions,
    # so there the API edge runs such an operation on a worker thread even when it is inline.
    sm2: bool = False

    def runs_inline(self, region: str) -> bool:
        """Whether a request in ``region`` runs on the event loop (else on a worker thread)."""
        return self.inline and not (self.sm2 and is_china(region))


# name -> (component, method, inline). Inline operations run on the event loop: they are served from
# caches and take microseconds. The others may wait on the database and run on a worker thread.
_TABLE: dict[str, tuple[str, str, bool]] = {
    "Encrypt": ("crypto", "encrypt", True),
    "Decrypt": ("crypto", "decrypt", True),
    "ReEncrypt": ("crypto", "re_encrypt", True),
    "GenerateDataKey": ("crypto", "generate_data_key", True),
    "GenerateDataKeyWithoutPlaintext": ("crypto", "generate_data_key_without_plaintext", True),
    "GenerateRandom": ("crypto", "generate_random", True),
    "GenerateDataKeyPair": ("data_key_pairs", "generate_data_key_pair", False),  # RSA keygen: slow
    "GenerateDataKeyPairWithoutPlaintext": (
        "data_key_pairs",
        "generate_data_key_pair_without_plaintext",
        False,
    ),
    "Sign": ("signing", "sign", True),
    "Verify": ("signing", "verify", True),
    "GetPublicKey": ("signing", "get_public_key", True),
    "GenerateMac": ("mac", "generate_mac", True),
    "VerifyMac": ("mac", "verify_mac", True),
    "DeriveSharedSecret": ("asymmetric", "derive_shared_secret", True),
    # ML-KEM-512 runs in pure Python (milliseconds): keep it off the event loop.
    "Encapsulate": ("asymmetric", "encapsulate", False),
    "Decapsulate": ("asymmetric", "decapsulate", False),
    "DescribeKey": ("keys", "describe_key", True),
    "CreateKey": ("keys", "create_key", False),
    "ListKeys": ("keys", "list_keys", False),
    "UpdateKeyDescription": ("keys", "update_key_description", False),
    "EnableKey": ("keys", "enable_key", False),
    "DisableKey": ("keys", "disable_key", False),
    "ScheduleKeyDeletion": ("keys", "schedule_key_deletion", False),
    "CancelKeyDeletion": ("keys", "cancel_key_deletion", False),
    "GetKeyPolicy": ("keys", "get_key_policy", False),
    "PutKeyPolicy": ("keys", "put_key_policy", False),
    "ListKeyPolicies": ("keys", "list_key_policies", False),
    "CreateAlias": ("aliases", "create_alias", False),
    "UpdateAlias": ("aliases", "update_alias", False),
    "DeleteAlias": ("aliases", "delete_alias", False),
    "ListAliases": ("aliases", "list_aliases", False),
    "TagResource": ("tags", "tag_resource", False),
    "UntagResource": ("tags", "untag_resource", False),
    "ListResourceTags": ("tags", "list_resource_tags", False),
    "EnableKeyRotation": ("rotation", "enable_key_rotation", False),
    "DisableKeyRotation": ("rotation", "disable_key_rotation", False),
    "GetKeyRotationStatus": ("rotation", "get_key_rotation_status", False),
    "RotateKeyOnDemand": ("rotation", "rotate_key_on_demand", False),
    "ListKeyRotations": ("rotation", "list_key_rotations", False),
    "GetKeyLastUsage": ("key_usage", "get_key_last_usage", False),  # reads the audit log
    # RSA wrapping key generation takes up to seconds: on a thread
    "GetParametersForImport": ("imports", "get_parameters_for_import", False),
    "ImportKeyMaterial": ("imports", "import_key_material", False),
    "DeleteImportedKeyMaterial": ("imports", "delete_imported_key_material", False),
    "CreateGrant": ("grants", "create_grant", False),
    "ListGrants": ("grants", "list_grants", False),
    "ListRetirableGrants": ("grants", "list_retirable_grants", False),
    "RetireGrant": ("grants", "retire_grant", False),
    "RevokeGrant": ("grants", "revoke_grant", False),
}
SUPPORTED_OPERATIONS = frozenset(_TABLE)
JOBS_BATCH = 100  # keys (or materials) read per query by the background jobs


def _drain(
    step: Callable[[float, int], list[KeyRecord]],
    now: float,
    event: str,
    on_event: Callable[[str, KeyRecord], None] | None,
) -> int:
    """Repeat a job step while it acts on something: one pass does every due job, not only the first
    batch (``openkms jobs run --at TIME`` runs a single pass at that instant). What a step acted on is no
    longer due (rotated until ``now + period``, deleted, or its material erased), so this ends. Each
    batch's events are reported before the next batch runs."""
    count = 0
    while batch := step(now, JOBS_BATCH):
        if on_event is not None:
            for key in batch:
                on_event(event, key)
        count += len(batch)
    return count


# Inline operations that can touch an SM2 key (Operation.sm2).
_SM2_OPERATIONS = frozenset({"Encrypt", "Decrypt", "ReEncrypt", "Sign", "Verify", "DeriveSharedSecret"})


class KmsService:
    def __init__(self, core: Core, key_usage: KeyUsageSource | None = None) -> None:
        self.core = core
        markers = Markers(lambda: core.keyring.subkey(b"pagination-markers"))
        self.keys = Keys(core, markers)
        self.crypto = CryptoOps(core)
        self.asymmetric = self.crypto.asymmetric
        self.data_key_pairs = DataKeyPairs(self.crypto)
        self.signing = SigningOps(core)
        self.mac = MacOps(core)
        self.aliases = Aliases(core, markers)
        self.tags = Tags(core, markers)
        self.rotation = Rotation(core, markers)
        self.credentials = Credentials(core)
        self.grants = Grants(core, markers)
        if core.grants is None:  # the stored grants are what the authorization layer consults
            core.use_grants(self.grants)
        self.identities = Identities(core, self.credentials)
        if core.principals is None:  # IAM users and roles with their identity policies decide
            core.use_principals(self.identities)
        self.key_usage = KeyUsage(core, key_usage)
        self.imports = Imports(core)
        self.operations: dict[str, Operation] = {
            name: Operation(getattr(getattr(self, component), method), inline, name in _SM2_OPERATIONS)
            for name, (component, method, inline) in _TABLE.items()
        }

    def run_due_jobs(
        self, now: float, on_event: Callable[[str, KeyRecord], None] | None = None
    ) -> dict[str, int]:
        """One pass of the background work; safe to call from several nodes (each step re-checks).
        ``on_event("RotateKey" | "DeleteKey" | "DeleteExpiredKeyMaterial", key)`` is called for each action
        taken (the audit log)."""
        rotated = _drain(self.rotation.rotate_due_keys, now, "RotateKey", on_event)
        expired = _drain(self.imports.expire_due_materials, now, "DeleteExpiredKeyMaterial", on_event)
        deleted = _drain(self.keys.delete_due_keys, now, "DeleteKey", on_event)
        return {"rotated": rotated, "deleted": deleted, "expired": expired}
