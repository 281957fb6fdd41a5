"""SQLAlchemy Core schema for the SQL store (SQLite and PostgreSQL).

The Alembic migrations under ``migrations/versions`` must produce exactly this schema; a test compares
the migrated database with :data:`metadata`. Enum values are stored as their string values, booleans as
``Boolean`` without a CHECK constraint and timestamps as double-precision epoch seconds, so the same
definitions are portable across both dialects.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Column widths: AWS account ids are 12 digits, key ids are UUIDs or "mrk-" + 32 hex, alias names are at
# most 256 characters, tag keys 128 and tag values 256. The margins are generous on purpose.
ACCOUNT = 32
REGION = 64
KEY_ID = 64
NAME = 256

keys = Table(
    "keys",
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("region", String(REGION), primary_key=True),
    Column("key_id", String(KEY_ID), primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("description", Text, nullable=False),
    Column("key_spec", String(64), nullable=False),
    Column("key_usage", String(64), nullable=False),
    Column("origin", String(64), nullable=False),
    Column("key_manager", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("policy", Text, nullable=False),
    Column("multi_region", Boolean, nullable=False),
    Column("deletion_date", Double, nullable=True),
    Column("pending_window_days", Integer, nullable=True),
    Column("rotation_enabled", Boolean, nullable=False),
    Column("rotation_period_days", Integer, nullable=True),
    Column("next_rotation_at", Double, nullable=True),
    Column("current_material_id", String(64), nullable=True),
    Column("on_demand_rotations", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Index(None, "next_rotation_at"),
    Index(None, "deletion_date"),
)

materials = Table(
    "materials",
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("key_id", String(KEY_ID), primary_key=True),
    Column("material_id", String(64), primary_key=True),
    # insertion order within one key; breaks ties between materials created at the same timestamp
    Column("seq", Integer, nullable=False),
    Column("ekt", LargeBinary, nullable=True),
    Column("root_key_version", Integer, nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("rotation_type", String(32), nullable=True),
    Column("rotation_date", Double, nullable=True),
    Column("public_key", LargeBinary, nullable=True),
    # imported key material (migration 0003)
    Column("import_state", String(32), nullable=True),
    Column("expiration_model", String(32), nullable=True),
    Column("valid_to", Double, nullable=True),
    Column("description", Text, nullable=True),
    Index(None, "valid_to"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("region", String(REGION), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("target_key_id", String(KEY_ID), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(None, "account", "region", "target_key_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("region", String(REGION), primary_key=True),
    Column("key_id", String(KEY_ID), primary_key=True),
    Column("tag_key", String(NAME), primary_key=True),
    Column("tag_value", String(NAME), nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account", String(ACCOUNT), nullable=False),
    Column("user_name", String(NAME), nullable=False),
    Column("principal_arn", String(2048), nullable=False),
    Column("wrapped_secret", LargeBinary, nullable=False),
    Column("root_key_version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("enabled", Boolean, nullable=False),
)

root_keys = Table(
    "root_keys",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("provider", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("owner", String(NAME), nullable=False),
    Column("expires_at", Double, nullable=False),
)

# A single row (id = 1) holding the cluster-wide change counter. The row is created on first bump.
generation = Table(
    "generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

# --- audit log (openkms.audit) ------------------------------------------------------------------------
# Events are stored one row per group commit ("block"): ``events`` holds the batch's chain records as
# JSON lines, ``{"seq":N,"prev":"<hex>","hash":"<hex>","event":{...CloudTrail record...}}``, the same lines
# as the JSON-lines file sink. A row per event (plus its index entries) would cost every request more
# than the record itself; a block costs one row per commit. ``first_seq`` is assigned inside the commit
# transaction that moves the chain head (below), so every process and node appends to one ordered chain.
# hash = SHA-256(prev || seq || canonical JSON of the event).
AUDIT_SEQ = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid: cheap
KEY_ARN = 256

audit_blocks = Table(
    "audit_blocks",
    metadata,
    Column("first_seq", AUDIT_SEQ, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("min_time", Double, nullable=False),  # event times (epoch seconds) of the block's events
    Column("max_time", Double, nullable=False),
    Column("events", Text, nullable=False),
    Index(None, "max_time"),
)

# Which blocks hold events that touched a key (CloudTrail ``resources``): one row per key per block.
audit_block_keys = Table(
    "audit_block_keys",
    metadata,
    Column("key_arn", String(KEY_ARN), primary_key=True),
    Column("block", BigInteger, primary_key=True, autoincrement=False),  # the block's first_seq
)

# A single row (id = 1): the chain head, locked by every append, and the state of the digests.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),  # last event's seq (0: none yet)
    Column("hash", String(64), nullable=False),  # last event's hash
    Column("started_at", Double, nullable=False),  # when this log began (GetKeyLastUsage tracking start)
    Column("first_seq", BigInteger, nullable=False),  # first event kept (retention deletes older ones)
    Column("first_prev_hash", String(64), nullable=False),  # the chain value before first_seq
    Column("digest_number", BigInteger, nullable=False),  # last digest's number (0: none)
    Column("digest_seq", BigInteger, nullable=False),  # last seq covered by a digest
    Column("digest_at", Double, nullable=False),
    Column("digest_hash", String(64), nullable=False),  # SHA-256 of the last digest (digests are chained)
    CheckConstraint("id = 1", name="single_row"),
)

# Signed statements committing to the chain: "events first_seq..last_seq end with last_hash".
audit_digests = Table(
    "audit_digests",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", Double, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON of the statement
    Column("signature", Text, nullable=False),  # base64 Ed25519 signature of ``body``
)

# Digest signing keys: Ed25519 seeds wrapped by the root key (AAD binds the key id); public keys in clear.
audit_signing_keys = Table(
    "audit_signing_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("wrapped_seed", LargeBinary, nullable=False),
    Column("root_key_version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
)

# --- grants (openkms.service.grants) --------------------------------------------------------------------
# One row per grant. Grant ids are 256 random bits, unique store-wide, so they alone are the primary key;
# the key's (account, region, key_id) is indexed for ListGrants and the authorization cache, the
# retiring principal for ListRetirableGrants (which spans accounts within a Region).
PRINCIPAL = 256

grants = Table(
    "grants",
    metadata,
    Column("grant_id", String(64), primary_key=True),
    Column("account", String(ACCOUNT), nullable=False),
    Column("region", String(REGION), nullable=False),
    Column("key_id", String(KEY_ID), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("issuing_account", String(ACCOUNT), nullable=False),
    Column("operations", Text, nullable=False),  # comma-separated grant operation names
    Column("grantee_principal", String(PRINCIPAL), nullable=True),
    Column("grantee_service_principal", String(PRINCIPAL), nullable=True),
    Column("retiring_principal", String(PRINCIPAL), nullable=True),
    Column("retiring_service_principal", String(PRINCIPAL), nullable=True),
    Column("constraints", Text, nullable=True),  # canonical JSON of GrantConstraints
    Index(None, "account", "region", "key_id"),
    Index(None, "region", "retiring_principal"),
    Index(None, "region", "retiring_service_principal"),
)
