"""The digest signing key: an Ed25519 key whose seed exists only wrapped by the root key.

Created once per deployment (by ``openkms init``, or by the first process that needs it), stored in
``audit_signing_keys`` as (public key, wrapped seed). Every process unwraps the same key, so digests from
every worker and node verify with one public key (``openkms audit public-key``).

SECURITY INVARIANT: the stored public key is never trusted on its own when signing: the unwrapped seed
must produce it, or start-up fails. A verifier should pin the exported public key; ``verify`` without
``--public-key`` confirms the stored key the same way, through the key hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, text

from openkms.crypto import digest_signing
from openkms.crypto.digest_signing import DigestSigner
from openkms.keyring.keyring import Keyring
from openkms.storage.tables import audit_signing_keys

PURPOSE = "audit-digest-signing-key"
_PG_LOCK = 0x6F6B6D61  # advisory lock id: "create the audit signing key"


class SigningKeyError(Exception):
    """The stored signing key is missing, cannot be unwrapped, or does not match its public key."""


@dataclass(frozen=True, slots=True)
class StoredSigningKey:
    key_id: str
    public_key: bytes
    wrapped_seed: bytes
    root_key_version: int
    created_at: float


def stored_keys(engine: Engine) -> list[StoredSigningKey]:
    with engine.begin() as conn:
        rows = conn.execute(select(audit_signing_keys).order_by(audit_signing_keys.c.created_at)).all()
    return [StoredSigningKey(*tuple(row)) for row in rows]


def ensure_signing_key(engine: Engine, keyring: Keyring, now: float) -> StoredSigningKey:
    """Return the deployment's signing key, creating it on first use (one key even under races)."""
    existing = stored_keys(engine)
    if existing:
        return existing[0]
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE serialises creators
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
        row = conn.execute(select(audit_signing_keys).order_by(audit_signing_keys.c.created_at)).first()
        if row is not None:
            return StoredSigningKey(*tuple(row))
        seed = digest_signing.generate_seed()
        public = digest_signing.public_key(seed)
        key_id = digest_signing.key_id(public)
        wrapped, version = keyring.wrap_secret(PURPOSE, key_id, seed)
        record = StoredSigningKey(key_id, public, wrapped, version, now)
        conn.execute(
            audit_signing_keys.insert().values(
                key_id=key_id,
                public_key=public,
                wrapped_seed=wrapped,
                root_key_version=version,
                created_at=now,
            )
        )
        return record


def unwrap_signer(record: StoredSigningKey, keyring: Keyring) -> DigestSigner:
    """The usable signer of ``record``; fails if the stored public key is not the seed's."""
    try:
        seed = keyring.unwrap_secret(PURPOSE, record.key_id, record.wrapped_seed, record.root_key_version)
    except Exception as exc:
        raise SigningKeyError(f"the audit signing key {record.key_id} cannot be unwrapped") from exc
    signer = DigestSigner(seed)
    # INVARIANT: a substituted public key (or key id) in the database is detected here, never used.
    if signer.public_raw != record.public_key or signer.key_id != record.key_id:
        raise SigningKeyError(
            f"the stored public key of audit signing key {record.key_id} does not match its seed"
        )
    return signer
