"""Notebooks belong to a user

Revision ID: c129e2430aaf
Revises: 6ad3d43d0d2b
Create Date: 2026-12-06 03:40:49.474277
"""

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic.
revision = "c129e2430aaf"
down_revision = "6ad3d43d0d2b"
branch_labels = None
depends_on = None

notebook = sa.table("notebook", sa.column("owner_id", sa.Integer))
user = sa.table("user", sa.column("id", sa.Integer))


def upgrade() -> None:
    # Notebooks from before owners go to the first user, so that they stay visible to someone.
    # Checked before any change: MySQL cannot roll a schema change back.
    bind = op.get_bind()
    owner = None
    if bind.execute(sa.select(sa.func.count()).select_from(notebook)).scalar():
        owner = bind.execute(sa.select(sa.func.min(user.c.id))).scalar()
        if owner is None:
            raise RuntimeError(
                "The notebooks need an owner and there is no user: create one "
                "(flask users create EMAIL), then run flask db upgrade again."
            )
    with op.batch_alter_table("notebook", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
    if owner is not None:
        op.execute(sa.update(notebook).values(owner_id=owner))
    with op.batch_alter_table("notebook", schema=None) as batch_op:
        batch_op.alter_column("owner_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_notebook_name"), type_="unique")
        batch_op.create_index(batch_op.f("ix_notebook_owner_id"), ["owner_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_notebook_owner_id_name"), ["owner_id", "name"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_notebook_owner_id_user"),
            "user",
            ["owner_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    # Fails where two users have notebooks of one name: names were unique across users before.
    with op.batch_alter_table("notebook", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_notebook_owner_id_user"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_notebook_owner_id_name"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_notebook_owner_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_notebook_name"), ["name"])
        batch_op.drop_column("owner_id")
