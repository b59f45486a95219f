"""add predictions request_id

Written like `python3 tasks.py db.revision --message "add predictions request_id"` writes one.
A nullable column without a default: PostgreSQL adds it to a table of any size without
rewriting it, and the rows logged before it have no request id.

Revision ID: 5b0f3c1d9e2a
Revises: d258726f3557
Create Date: 2026-12-07 20:10:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5b0f3c1d9e2a"
down_revision: str | Sequence[str] | None = "d258726f3557"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "request_id")
