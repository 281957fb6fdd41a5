"""The service facade: every KMS operation this build implements, by its AWS name.

``_TABLE`` is the single table the API edge dispatches through; an operation of the service model
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
    inline: bool


# name -> (component, method, inline). Inline operations run on the event loop: they are served from
# caches and take microseconds. The others may wait on the database and run on a worker thread.
_TABLE: dict[str, tuple[str, str, bool]] = {
    "Encrypt": ("crypto", "encrypt", True),
    "Decrypt": ("crypto", "decrypt", True),
    "ReEncrypt": ("crypto", "re_encrypt", True),
    "GenerateDataKey": ("crypto", "generate_data_key", True),
    "GenerateDataKeyWithoutPlaintext": ("crypto", "generate_data_key_without_plaintext", True),
    "GenerateRandom": ("crypto", "generate_random", True),
    "DescribeKey": ("keys", "describe_key", True),
    "CreateKey": ("keys", "create_key", False),
    "ListKeys": ("keys", "list_keys", False),
    "UpdateKeyDescription": ("keys", "update_key_description", False),
    "EnableKey": ("keys", "enable_key", False),
    "DisableKey": ("keys", "disable_key", False),
    "ScheduleKeyDeletion": ("keys", "schedule_key_deletion", False),
    "CancelKeyDeletion": ("keys", "cancel_key_deletion", False),
    "GetKeyPolicy": ("keys", "get_key_policy", False),
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
}
SUPPORTED_OPERATIONS = frozenset(_TABLE)


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
        self.operations: dict[str, Operation] = {
            name: Operation(getattr(getattr(self, component), method), inline)
            for name, (component, method, inline) in _TABLE.items()
        }

    def run_due_jobs(self, now: float) -> dict[str, int]:
        """One pass of the background work; safe to call from several nodes (each step re-checks)."""
        rotated = self.rotation.rotate_due_keys(now)
        deleted = self.keys.delete_due_keys(now)
        return {"rotated": len(rotated), "deleted": len(deleted)}
