"""The storage contract: immutable records and the ``Store`` / ``Tx`` protocols.

Every implementation must pass ``tests/integration/test_storage_conformance.py`` (run against SQLite and
PostgreSQL). Rules shared by all implementations:

* A ``Tx`` is one database transaction: everything done through it commits atomically when the
  ``Store.tx()`` context exits normally and rolls back when it exits with an exception.
* Reads of a missing row return ``None`` (or an empty list); they never raise.
* Inserting a row whose primary key exists raises ``DuplicateError``.
* ``update_key`` is a compare-and-set on ``KeyRecord.version``: it writes only if the stored version
  equals ``expected_version`` and raises ``ConflictError`` otherwise; the stored version becomes
  ``expected_version + 1``.
* ``get_key`` in a ``Store.tx()`` transaction reads the key to change it: a concurrent ``Store.tx()`` that
  reads the same key waits until this one ends, then reads what it committed, so read-check-update
  never loses its compare-and-set to a concurrent writer of the same key (PostgreSQL: ``FOR UPDATE``;
  SQLite writers are serialised by the write lock).
* Timestamps are float seconds since the Unix epoch (UTC).
* Secret columns (``MaterialRecord.ekt``, ``AccessKeyRecord.wrapped_secret``, ``RootKeyRecord.wrapped``)
  hold only ciphertext; the store never sees a secret in clear.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


class DuplicateError(Exception):
    """A row with the same primary key already exists."""


class ConflictError(Exception):
    """A compare-and-set update lost a race with another writer."""


class KeyState(enum.Enum):
    """One field per fact: the key state of the AWS state machine (kms-semantics.md section 4)."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    PENDING_IMPORT = "PendingImport"
    UNAVAILABLE = "Unavailable"
    CREATING = "Creating"
    UPDATING = "Updating"


class MaterialState(enum.Enum):
    CURRENT = "CURRENT"
    NON_CURRENT = "NON_CURRENT"
    PENDING_ROTATION = "PENDING_ROTATION"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    account: str
    region: str
    key_id: str
    created_at: float
    description: str
    key_spec: str
    key_usage: str
    origin: str
    key_manager: str
    state: KeyState
    policy: str
    multi_region: bool = False
    deletion_date: float | None = None
    pending_window_days: int | None = None
    rotation_enabled: bool = False
    rotation_period_days: int | None = None
    next_rotation_at: float | None = None
    current_material_id: str | None = None
    on_demand_rotations: int = 0
    version: int = 1


@dataclass(frozen=True, slots=True)
class MaterialRecord:
    """One version of a key's secret, wrapped by the root key (``ekt`` = exported key token)."""

    account: str
    key_id: str
    material_id: str  # 64 lowercase hex
    ekt: bytes | None  # None once imported material is deleted
    root_key_version: int
    state: MaterialState
    created_at: float
    rotation_type: str | None = None  # None (initial), "AUTOMATIC" or "ON_DEMAND"
    rotation_date: float | None = None
    public_key: bytes | None = None  # DER SubjectPublicKeyInfo for asymmetric keys
    # imported key material (Origin EXTERNAL) only; None for generated material
    import_state: str | None = None  # "IMPORTED" or "PENDING_IMPORT" (deleted or expired)
    expiration_model: str | None = None  # KEY_MATERIAL_EXPIRES / KEY_MATERIAL_DOES_NOT_EXPIRE while imported
    valid_to: float | None = None  # expiry of the current import (KEY_MATERIAL_EXPIRES)
    description: str | None = None  # KeyMaterialDescription


@dataclass(frozen=True, slots=True)
class AliasRecord:
    account: str
    region: str
    name: str  # "alias/..."
    target_key_id: str  # bare key id, never an ARN
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TagRecord:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    access_key_id: str
    account: str
    user_name: str
    principal_arn: str
    wrapped_secret: bytes  # AES-GCM under the root key, AAD binds the access key id
    root_key_version: int
    created_at: float
    enabled: bool = True
    # "Root", "User" or "AssumedRole" (identities). "" when inserting means: derived from ``user_name``
    # ("root" -> Root, anything else -> User), as keys were before principals existed.
    principal_type: str = ""
    session_name: str | None = None  # the role session an AssumedRole key signs as


@dataclass(frozen=True, slots=True)
class RootKeyRecord:
    version: int
    provider: str  # "file", later "shamir", "pkcs11"
    wrapped: bytes  # the root key, wrapped by the root-of-trust provider
    created_at: float


# --- grants -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A grant on a key (kms-semantics.md section 6.8). ``grant_id`` (64 hex) is unique store-wide."""

    grant_id: str
    account: str  # the key's account, Region and id
    region: str
    key_id: str
    name: str  # "" when the grant has no name
    created_at: float
    issuing_account: str  # account id of the principal that created the grant
    operations: tuple[str, ...]  # grant operation names, in request order
    grantee_principal: str | None = None  # exactly one of the two grantee forms is set
    grantee_service_principal: str | None = None
    retiring_principal: str | None = None  # at most one of the two retiring forms is set
    retiring_service_principal: str | None = None
    constraints: str | None = None  # canonical JSON of the GrantConstraints structure


# --- identities ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRecord:
    account: str  # 12 digits
    name: str  # operator's label ("" when none)
    created_at: float


@dataclass(frozen=True, slots=True)
class IamPrincipalRecord:
    """An IAM user or role. Unique per (account, kind) ignoring the case of ``name``, as in IAM."""

    account: str
    kind: str  # "user" or "role"
    name: str
    path: str  # "/" or "/a/b/"
    principal_id: str  # AIDA... (users) / AROA... (roles); unique across the store
    arn: str
    created_at: float


@dataclass(frozen=True, slots=True)
class IdentityPolicyRecord:
    """An identity (IAM inline) policy attached to a user or role."""

    account: str
    kind: str
    principal_name: str  # matched ignoring case
    policy_name: str
    document: str  # JSON text, stored as given
    updated_at: float


class Tx(Protocol):
    """Repositories bound to one open transaction."""

    # keys
    def get_key(self, account: str, region: str, key_id: str) -> KeyRecord | None: ...
    def insert_key(self, key: KeyRecord) -> None: ...
    def update_key(self, key: KeyRecord, expected_version: int) -> KeyRecord: ...
    def delete_key(self, account: str, region: str, key_id: str) -> None:
        """Remove the key with its materials, aliases, tags and grants."""

    def list_keys(self, account: str, region: str, after_key_id: str | None, limit: int) -> list[KeyRecord]:
        """Keys ordered by key_id, strictly after ``after_key_id`` when given."""

    def keys_due_for_rotation(self, now: float, limit: int) -> list[KeyRecord]:
        """Enabled keys with rotation enabled and ``next_rotation_at <= now``, any account/region."""

    def keys_due_for_deletion(self, now: float, limit: int) -> list[KeyRecord]:
        """PendingDeletion keys with ``deletion_date <= now``, any account/region."""

    def count_keys(self, account: str, region: str) -> int: ...

    # key material
    def insert_material(self, material: MaterialRecord) -> None: ...
    def get_material(self, account: str, key_id: str, material_id: str) -> MaterialRecord | None: ...
    def list_materials(self, account: str, key_id: str) -> list[MaterialRecord]:
        """All materials of a key, oldest first."""

    def set_material_state(
        self, account: str, key_id: str, material_id: str, state: MaterialState
    ) -> None: ...

    # imported key material
    def replace_material(self, material: MaterialRecord) -> None:
        """Overwrite every non-key column of an existing material (ekt, state, import fields, ...)."""

    def materials_due_for_expiry(self, now: float, limit: int) -> list[tuple[KeyRecord, MaterialRecord]]:
        """Imported materials that still have an ``ekt`` and whose ``valid_to <= now``, any account, each
        with the key it belongs to (every Region's key of that account and key id)."""

    # aliases
    def get_alias(self, account: str, region: str, name: str) -> AliasRecord | None: ...
    def insert_alias(self, alias: AliasRecord) -> None: ...
    def update_alias(self, alias: AliasRecord) -> None: ...
    def delete_alias(self, account: str, region: str, name: str) -> None: ...
    def list_aliases(
        self, account: str, region: str, key_id: str | None, after_name: str | None, limit: int
    ) -> list[AliasRecord]:
        """Aliases ordered by name, optionally only those targeting ``key_id``."""

    def count_aliases_for_key(self, account: str, region: str, key_id: str) -> int: ...

    # tags (ordered by tag key)
    def list_tags(self, account: str, region: str, key_id: str) -> list[TagRecord]: ...
    def put_tags(self, account: str, region: str, key_id: str, tags: Sequence[TagRecord]) -> None:
        """Insert or replace each tag."""

    def delete_tags(self, account: str, region: str, key_id: str, tag_keys: Sequence[str]) -> None: ...

    # credentials
    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None: ...
    def insert_access_key(self, record: AccessKeyRecord) -> None: ...
    def delete_access_key(self, access_key_id: str) -> bool: ...
    def list_access_keys(self) -> list[AccessKeyRecord]: ...

    # identities: accounts, IAM users and roles, their tags and identity policies. Principal names are
    # matched ignoring case; deleting a principal also deletes its tags and policies (not its access keys).
    def get_account(self, account: str) -> AccountRecord | None: ...
    def put_account(self, record: AccountRecord) -> None:
        """Insert, or replace the name of an existing account (``created_at`` is kept)."""

    def list_accounts(self) -> list[AccountRecord]: ...
    def get_iam_principal(self, account: str, kind: str, name: str) -> IamPrincipalRecord | None: ...
    def insert_iam_principal(self, record: IamPrincipalRecord) -> None:
        """DuplicateError when the name (ignoring case) or the principal id is taken."""

    def update_iam_principal(self, record: IamPrincipalRecord) -> bool:
        """Replace path and ARN of the principal with this account, kind and name; False if missing."""

    def delete_iam_principal(self, account: str, kind: str, name: str) -> bool: ...
    def list_iam_principals(self, account: str | None, kind: str | None) -> list[IamPrincipalRecord]:
        """Ordered by account, kind, folded name; ``None`` filters nothing."""

    def list_iam_principal_tags(self, account: str, kind: str, name: str) -> list[TagRecord]: ...
    def put_iam_principal_tags(
        self, account: str, kind: str, name: str, tags: Sequence[TagRecord]
    ) -> None: ...
    def delete_iam_principal_tags(
        self, account: str, kind: str, name: str, tag_keys: Sequence[str]
    ) -> None: ...
    def list_identity_policies(self, account: str, kind: str, name: str) -> list[IdentityPolicyRecord]:
        """Ordered by policy name."""

    def put_identity_policy(self, record: IdentityPolicyRecord) -> None:
        """Insert or replace the document of the named policy."""

    def delete_identity_policy(self, account: str, kind: str, name: str, policy_name: str) -> bool: ...

    # root key versions
    def get_root_key(self, version: int) -> RootKeyRecord | None: ...
    def latest_root_key(self) -> RootKeyRecord | None: ...
    def insert_root_key(self, record: RootKeyRecord) -> None: ...

    # root key rotation
    def list_root_keys(self) -> list[RootKeyRecord]:
        """Every root-key version, oldest first."""

    def replace_root_key(self, record: RootKeyRecord, expected_provider: str) -> None:
        """Store ``record.provider`` and ``record.wrapped`` for ``record.version`` (a root-of-trust
        migration re-wraps the same root key); ``ConflictError`` if the stored provider is not
        ``expected_provider`` or the version does not exist."""

    def count_wrapped_by_root_key(self) -> dict[int, int]:
        """Number of stored secrets (materials with an EKT, access-key secrets, audit signing keys) per
        root-key version."""

    def materials_to_rewrap(self, below_version: int, limit: int) -> list[tuple[MaterialRecord, str]]:
        """Up to ``limit`` materials with an EKT under a root-key version below ``below_version``, each
        with its key's ``key_spec`` (part of the EKT's AAD)."""

    def rewrap_material(self, material: MaterialRecord, ekt: bytes, root_key_version: int) -> bool:
        """Replace the EKT of ``material`` if it still holds ``material.ekt`` under
        ``material.root_key_version`` (compare-and-set); return whether it was replaced."""

    def access_keys_to_rewrap(self, below_version: int, limit: int) -> list[AccessKeyRecord]: ...
    def rewrap_access_key(self, record: AccessKeyRecord, wrapped: bytes, root_key_version: int) -> bool:
        """Compare-and-set like :meth:`rewrap_material`."""

    def signing_keys_to_rewrap(self, below_version: int, limit: int) -> list[tuple[str, bytes, int]]:
        """Audit signing keys as (key_id, wrapped_seed, root_key_version) under older root keys."""

    def rewrap_signing_key(
        self, key_id: str, old_wrapped: bytes, old_version: int, wrapped: bytes, root_key_version: int
    ) -> bool:
        """Compare-and-set like :meth:`rewrap_material`."""

    # cluster coordination
    def try_acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew the named lease if it is free, expired, or already ours. Used so background jobs
        run once per cluster."""

    def bump_generation(self) -> int:
        """Increment and return the cluster-wide change counter (cache invalidation)."""

    def get_generation(self) -> int: ...

    # grants
    def insert_grant(self, grant: GrantRecord) -> None: ...
    def get_grant(self, account: str, region: str, key_id: str, grant_id: str) -> GrantRecord | None: ...
    def list_grants(
        self,
        account: str,
        region: str,
        key_id: str,
        *,
        grant_id: str | None = None,
        grantee_principal: str | None = None,
        grantee_service_principal: str | None = None,
        name: str | None = None,
        after_grant_id: str | None = None,
        limit: int | None = None,
    ) -> list[GrantRecord]:
        """Grants of one key ordered by grant_id, strictly after ``after_grant_id``; each given filter
        must match exactly; ``limit=None`` returns all."""

    def list_retirable_grants(
        self,
        region: str,
        *,
        retiring_principal: str | None = None,
        retiring_service_principal: str | None = None,
        after_grant_id: str | None = None,
        limit: int,
    ) -> list[GrantRecord]:
        """Grants in ``region`` of every account whose retiring principal is exactly the one given,
        ordered by grant_id."""

    def delete_grant(self, account: str, region: str, key_id: str, grant_id: str) -> bool:
        """Remove one grant; False when it did not exist."""

    def count_grants(self, account: str, region: str, key_id: str) -> int: ...


class Store(Protocol):
    def tx(self) -> AbstractContextManager[Tx]:
        """Open a write transaction; commit on normal exit, roll back on exception."""

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read-only transaction (a consistent snapshot that never waits for writers where the
        backend allows it). Writing through it is a contract violation."""

    def close(self) -> None: ...


def _iter_protocol_methods() -> Iterator[str]:  # pragma: no cover - documentation helper
    yield from (name for name in dir(Tx) if not name.startswith("_"))
