"""Grants: one row per grant, indexed by key and by retiring principal.

Revision ID: 0004_grants
Revises: 0003_import
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_grants"
down_revision: str | None = "0003_import"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("issuing_account", sa.String(32), nullable=False),
        sa.Column("operations", sa.Text(), nullable=False),
        sa.Column("grantee_principal", sa.String(256), nullable=True),
        sa.Column("grantee_service_principal", sa.String(256), nullable=True),
        sa.Column("retiring_principal", sa.String(256), nullable=True),
        sa.Column("retiring_service_principal", sa.String(256), nullable=True),
        sa.Column("constraints", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("grant_id", name="pk_grants"),
    )
    op.create_index("ix_grants_account_region_key_id", "grants", ["account", "region", "key_id"])
    op.create_index("ix_grants_region_retiring_principal", "grants", ["region", "retiring_principal"])
    op.create_index(
        "ix_grants_region_retiring_service_principal", "grants", ["region", "retiring_service_principal"]
    )


def downgrade() -> None:
    op.drop_index("ix_grants_region_retiring_service_principal", table_name="grants")
    op.drop_index("ix_grants_region_retiring_principal", table_name="grants")
    op.drop_index("ix_grants_account_region_key_id", table_name="grants")
    op.drop_table("grants")
