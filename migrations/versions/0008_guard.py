"""api keys: the key a rotated key replaced (unique: a key is rotated once)

Revision ID: 0008_guard
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_guard"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column(
                "rotated_from_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch.create_unique_constraint(batch.f("uq_api_keys_rotated_from_id"), ["rotated_from_id"])
        batch.create_foreign_key(
            batch.f("fk_api_keys_rotated_from_id_api_keys"), "api_keys", ["rotated_from_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(batch.f("fk_api_keys_rotated_from_id_api_keys"), type_="foreignkey")
        batch.drop_constraint(batch.f("uq_api_keys_rotated_from_id"), type_="unique")
        batch.drop_column("rotated_from_id")
