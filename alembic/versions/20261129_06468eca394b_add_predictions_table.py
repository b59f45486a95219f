"""add predictions table

The prediction log (ML03): which model answered what, with a GIN index (jsonb_path_ops) for
containment queries on the answer and (created_at, id) for newest-first and keyset pages.

Revision ID: 06468eca394b
Revises: 7db54d905bb0
Create Date: 2026-11-29 21:41:50.614089

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # autogenerate writes sqlmodel.sql.sqltypes.AutoString for str
from sqlalchemy.dialects import postgresql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "06468eca394b"
down_revision: str | Sequence[str] | None = "7db54d905bb0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("model_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("model_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column(
            "created_at", sqlmodel.sql.sqltypes.UTCDateTime(), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index("ix_predictions_created_at_id", "predictions", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_predictions_output",
        "predictions",
        ["output"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"output": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index(
        "ix_predictions_output",
        table_name="predictions",
        postgresql_using="gin",
        postgresql_ops={"output": "jsonb_path_ops"},
    )
    op.drop_index("ix_predictions_created_at_id", table_name="predictions")
    op.drop_table("predictions")
