"""The service facade: every KMS operation this build implements, by its AWS name.

``OPERATIONS`` is the single table the API edge dispatches through; an operation of the service model
that is missing here answers UnsupportedOperationException naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from openkms.service.aliases import Aliases
from openkms.service.core import Core, Handler
from openkms.service.credentials import Credentials
from openkms.service.crypto_ops import CryptoOps
from openkms.service.keys import Keys
from openkms.service.pagination import Markers
from openkms.service.rotation import Rotation
from openkms.service.tags import Tags


@dataclass(frozen=True)
class Operation:
    handler: Handler
    # Inline operations run on the event loop: they are served from caches and take microseconds.
    # The others may wait on the database and run on a worker thread.
    inline: bool


class KmsService:
    def __init__(self, core: Core) -> None:
        self.core = core
        markers = Markers(core.keyring.subkey(b"pagination-markers"))
        self.keys = Keys(core, markers)
        self.crypto = CryptoOps(core)
        self.aliases = Aliases(core, markers)
        self.tags = Tags(core, markers)
        self.rotation = Rotation(core, markers)
        self.credentials = Credentials(core)
        k, c, a, t, r = self.keys, self.crypto, self.aliases, self.tags, self.rotation
        fast = {
            "Encrypt": c.encrypt,
            "Decrypt": c.decrypt,
            "ReEncrypt": c.re_encrypt,
            "GenerateDataKey": c.generate_data_key,
            "GenerateDataKeyWithoutPlaintext": c.generate_data_key_without_plaintext,
            "GenerateRandom": c.generate_random,
            "DescribeKey": k.describe_key,
        }
        slow = {
            "CreateKey": k.create_key,
            "ListKeys": k.list_keys,
            "UpdateKeyDescription": k.update_key_description,
            "EnableKey": k.enable_key,
            "DisableKey": k.disable_key,
            "ScheduleKeyDeletion": k.schedule_key_deletion,
            "CancelKeyDeletion": k.cancel_key_deletion,
            "GetKeyPolicy": k.get_key_policy,
            "ListKeyPolicies": k.list_key_policies,
            "CreateAlias": a.create_alias,
            "UpdateAlias": a.update_alias,
            "DeleteAlias": a.delete_alias,
            "ListAliases": a.list_aliases,
            "TagResource": t.tag_resource,
            "UntagResource": t.untag_resource,
            "ListResourceTags": t.list_resource_tags,
            "EnableKeyRotation": r.enable_key_rotation,
            "DisableKeyRotation": r.disable_key_rotation,
            "GetKeyRotationStatus": r.get_key_rotation_status,
            "RotateKeyOnDemand": r.rotate_key_on_demand,
            "ListKeyRotations": r.list_key_rotations,
        }
        self.operations: dict[str, Operation] = {
            **{name: Operation(h, inline=True) for name, h in fast.items()},
            **{name: Operation(h, inline=False) for name, h in slow.items()},
        }

    def run_due_jobs(self, now: float) -> dict[str, int]:
        """One pass of the background work; safe to call from several nodes (each step re-checks)."""
        rotated = self.rotation.rotate_due_keys(now)
        deleted = self.keys.delete_due_keys(now)
        return {"rotated": len(rotated), "deleted": len(deleted)}
