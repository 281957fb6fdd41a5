"""Imported key material: per-material import state, expiration model, ValidTo and description.

Revision ID: 0003_import
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_import"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("materials") as batch:
        batch.add_column(sa.Column("import_state", sa.String(32), nullable=True))
        batch.add_column(sa.Column("expiration_model", sa.String(32), nullable=True))
        batch.add_column(sa.Column("valid_to", sa.Double(), nullable=True))
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
    op.create_index("ix_materials_valid_to", "materials", ["valid_to"])


def downgrade() -> None:
    op.drop_index("ix_materials_valid_to", table_name="materials")
    with op.batch_alter_table("materials") as batch:
        batch.drop_column("description")
        batch.drop_column("valid_to")
        batch.drop_column("expiration_model")
        batch.drop_column("import_state")
