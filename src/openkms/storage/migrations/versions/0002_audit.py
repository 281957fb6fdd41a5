"""Audit log: event blocks (hash-chained JSON lines), their keys, chain head, signed digests,
digest signing keys.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_blocks",
        sa.Column("first_seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min_time", sa.Double(), nullable=False),
        sa.Column("max_time", sa.Double(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("first_seq", name="pk_audit_blocks"),
    )
    op.create_index("ix_audit_blocks_max_time", "audit_blocks", ["max_time"])

    op.create_table(
        "audit_block_keys",
        sa.Column("key_arn", sa.String(256), nullable=False),
        sa.Column("block", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key_arn", "block", name="pk_audit_block_keys"),
    )

    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("first_prev_hash", sa.String(64), nullable=False),
        sa.Column("digest_number", sa.BigInteger(), nullable=False),
        sa.Column("digest_seq", sa.BigInteger(), nullable=False),
        sa.Column("digest_at", sa.Double(), nullable=False),
        sa.Column("digest_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_chain_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain"),
    )

    op.create_table(
        "audit_digests",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_audit_digests"),
    )

    op.create_table(
        "audit_signing_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_seed", sa.LargeBinary(), nullable=False),
        sa.Column("root_key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_audit_signing_keys"),
    )


def downgrade() -> None:
    for table in (
        "audit_signing_keys",
        "audit_digests",
        "audit_chain",
        "audit_block_keys",
        "audit_blocks",
    ):
        op.drop_table(table)
