"""Identities: accounts, IAM users and roles with tags and identity policies; access keys name their
principal (root, user, or role session).

Existing access keys keep working: a key whose user name is ``root`` stays the account root, any other
becomes an IAM user key (a "legacy" principal until a user of that name is created).

Revision ID: 0005_identities
Revises: 0004_grants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_identities"
down_revision: str | None = "0004_grants"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_keys") as batch:
        batch.add_column(sa.Column("principal_type", sa.String(16), nullable=False, server_default="Root"))
        batch.add_column(sa.Column("session_name", sa.String(64), nullable=True))
    op.execute("UPDATE access_keys SET principal_type = 'User' WHERE user_name <> 'root'")

    op.create_table(
        "iam_accounts",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_iam_accounts"),
    )
    op.create_table(
        "iam_principals",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("folded", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("principal_id", sa.String(32), nullable=False),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("account", "kind", "folded", name="pk_iam_principals"),
        sa.UniqueConstraint("principal_id", name="uq_iam_principals_principal_id"),
    )
    op.create_table(
        "iam_principal_tags",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("folded", sa.String(64), nullable=False),
        sa.Column("tag_key", sa.String(256), nullable=False),
        sa.Column("tag_value", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("account", "kind", "folded", "tag_key", name="pk_iam_principal_tags"),
    )
    op.create_table(
        "iam_policies",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("folded", sa.String(64), nullable=False),
        sa.Column("policy_name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("account", "kind", "folded", "policy_name", name="pk_iam_policies"),
    )


def downgrade() -> None:
    for table in ("iam_policies", "iam_principal_tags", "iam_principals", "iam_accounts"):
        op.drop_table(table)
    with op.batch_alter_table("access_keys") as batch:
        batch.drop_column("session_name")
        batch.drop_column("principal_type")
