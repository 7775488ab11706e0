"""entries

Revision ID: 7d1f0c2b9a10
Revises:
Create Date: 2025-03-02 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "7d1f0c2b9a10"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("entry")
