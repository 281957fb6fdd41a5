"""AWS managed keys: ``alias/aws/<service>`` keys created on first use (docs/authorization.md).

A managed key has KeyManager AWS, yearly automatic rotation that cannot be turned off, and AWS's
managed-key policy: any principal of the account may use it through the named service
(``kms:ViaService`` + ``kms:CallerAccount``), and the account may read its metadata directly. The
policy is what forbids everything else (PutKeyPolicy, DisableKey, ScheduleKeyDeletion, rotation
changes, tagging, aliasing): those answer AccessDeniedException, as AWS's policy makes them do.
"""

from __future__ import annotations

import re

import orjson

from openkms.crypto.symmetric import generate_symmetric_material, new_material_id
from openkms.identifiers import new_key_id, principal_arn
from openkms.keyring.keyring import Keyring
from openkms.storage.base import (
    AliasRecord,
    DuplicateError,
    KeyRecord,
    KeyState,
    MaterialRecord,
    MaterialState,
    Store,
)

MANAGED_PREFIX = "alias/aws/"
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
YEAR_DAYS = 365
DAY = 86400.0


def is_managed_alias(name: str) -> bool:
    return name.startswith(MANAGED_PREFIX) and _SERVICE.match(name[len(MANAGED_PREFIX) :]) is not None


def managed_policy(partition: str, account: str, region: str, service: str) -> str:
    """AWS's policy shape for AWS managed keys (kms-semantics.md 6.6 names only the default policy)."""
    policy = {
        "Version": "2012-10-17",
        "Id": f"auto-{service}-1",
        "Statement": [
            {
                "Sid": f"Allow access through {service} for all principals in the account that are "
                f"authorized to use {service}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"{service}.{region}.amazonaws.com",
                        "kms:CallerAccount": account,
                    }
                },
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": principal_arn(partition, account, "root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*",
            },
        ],
    }
    return orjson.dumps(policy, option=orjson.OPT_INDENT_2).decode()


def ensure_managed_key(
    store: Store, keyring: Keyring, partition: str, account: str, region: str, alias_name: str, now: float
) -> AliasRecord | None:
    """The alias of the managed key ``alias_name`` names, creating key and alias if they do not exist.
    Concurrent first uses converge on one key: the alias insert decides, the loser rolls back."""
    if not is_managed_alias(alias_name):
        return None
    service = alias_name[len(MANAGED_PREFIX) :]
    key_id = new_key_id()
    material_id = new_material_id().hex()
    ekt, root_version = keyring.wrap_material(
        account, key_id, material_id, "SYMMETRIC_DEFAULT", generate_symmetric_material()
    )
    key = KeyRecord(
        account=account,
        region=region,
        key_id=key_id,
        created_at=now,
        description=f"Default key that protects my {service} data when no other key is defined",
        key_spec="SYMMETRIC_DEFAULT",
        key_usage="ENCRYPT_DECRYPT",
        origin="AWS_KMS",
        key_manager="AWS",
        state=KeyState.ENABLED,
        policy=managed_policy(partition, account, region, service),
        rotation_enabled=True,
        rotation_period_days=YEAR_DAYS,
        next_rotation_at=now + YEAR_DAYS * DAY,
        current_material_id=material_id,
    )
    material = MaterialRecord(
        account=account,
        key_id=key_id,
        material_id=material_id,
        ekt=ekt,
        root_key_version=root_version,
        state=MaterialState.CURRENT,
        created_at=now,
    )
    alias = AliasRecord(account, region, alias_name, key_id, now, now)
    try:
        with store.tx() as tx:
            existing = tx.get_alias(account, region, alias_name)
            if existing is not None:
                return existing
            tx.insert_key(key)
            tx.insert_material(material)
            tx.insert_alias(alias)
    except DuplicateError:
        with store.read() as tx:
            return tx.get_alias(account, region, alias_name)
    return alias
