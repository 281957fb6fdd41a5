"""Initial schema.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "keys",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("key_spec", sa.String(64), nullable=False),
        sa.Column("key_usage", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("key_manager", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("multi_region", sa.Boolean(), nullable=False),
        sa.Column("deletion_date", sa.Double(), nullable=True),
        sa.Column("pending_window_days", sa.Integer(), nullable=True),
        sa.Column("rotation_enabled", sa.Boolean(), nullable=False),
        sa.Column("rotation_period_days", sa.Integer(), nullable=True),
        sa.Column("next_rotation_at", sa.Double(), nullable=True),
        sa.Column("current_material_id", sa.String(64), nullable=True),
        sa.Column("on_demand_rotations", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", "region", "key_id", name="pk_keys"),
    )
    op.create_index("ix_keys_next_rotation_at", "keys", ["next_rotation_at"])
    op.create_index("ix_keys_deletion_date", "keys", ["deletion_date"])

    op.create_table(
        "materials",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("material_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ekt", sa.LargeBinary(), nullable=True),
        sa.Column("root_key_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("rotation_type", sa.String(32), nullable=True),
        sa.Column("rotation_date", sa.Double(), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("account", "key_id", "material_id", name="pk_materials"),
    )

    op.create_table(
        "aliases",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("target_key_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("account", "region", "name", name="pk_aliases"),
    )
    op.create_index(
        "ix_aliases_account_region_target_key_id", "aliases", ["account", "region", "target_key_id"]
    )

    op.create_table(
        "tags",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("tag_key", sa.String(256), nullable=False),
        sa.Column("tag_value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("account", "region", "key_id", "tag_key", name="pk_tags"),
    )

    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(128), nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(256), nullable=False),
        sa.Column("principal_arn", sa.String(2048), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("root_key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("access_key_id", name="pk_access_keys"),
    )

    op.create_table(
        "root_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_root_keys"),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )

    op.create_table(
        "generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_generation_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_generation"),
    )


def downgrade() -> None:
    for table in ("generation", "leases", "root_keys", "access_keys", "tags", "aliases", "materials"):
        op.drop_table(table)
    op.drop_index("ix_keys_deletion_date", table_name="keys")
    op.drop_index("ix_keys_next_rotation_at", table_name="keys")
    op.drop_table("keys")
