"""initial empty schema

Revision ID: b1c283ca4571
Revises:
Create Date: 2026-11-26 06:32:43.747505

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "b1c283ca4571"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
