"""add predictions shadow_of

Written by hand (`python3 tasks.py db.revision --message "..." --empty`): the prediction log is
the largest table, and written to on every prediction. A nullable column without a default is
added without a rewrite; the foreign key is added NOT VALID (no scan under the ALTER's lock)
and validated after, which reads the table while writes go on; the index is built
CONCURRENTLY, outside the transaction, without blocking inserts.

Revision ID: 3c5e7a9b1d20
Revises: 8da4f0e032ec
Create Date: 2026-12-07 22:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op

# revision identifiers, used by Alembic.
revision: str = "3c5e7a9b1d20"
down_revision: str | Sequence[str] | None = "8da4f0e032ec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_predictions_shadow_of"


def upgrade() -> None:
    op.add_column("predictions", sa.Column("shadow_of", sa.BigInteger(), nullable=True))
    op.execute(
        "ALTER TABLE predictions ADD CONSTRAINT fk_predictions_shadow_of_predictions "
        "FOREIGN KEY (shadow_of) REFERENCES predictions (id) ON DELETE CASCADE NOT VALID"
    )
    op.execute("ALTER TABLE predictions VALIDATE CONSTRAINT fk_predictions_shadow_of_predictions")
    with op.get_context().autocommit_block():
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON predictions (shadow_of) "
            "WHERE shadow_of IS NOT NULL"
        )
    if not context.is_offline_mode():
        valid = op.get_bind().scalar(
            sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": INDEX}
        )
        if not valid:  # a failed concurrent build leaves an INVALID index that IF NOT EXISTS accepts
            raise RuntimeError(
                f"index {INDEX} is invalid (an earlier concurrent build failed): "
                f"run DROP INDEX CONCURRENTLY {INDEX}; then upgrade again"
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    op.drop_constraint("fk_predictions_shadow_of_predictions", "predictions", type_="foreignkey")
    op.drop_column("predictions", "shadow_of")
