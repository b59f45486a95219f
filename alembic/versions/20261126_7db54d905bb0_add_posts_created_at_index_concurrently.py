"""add posts created_at index concurrently

Written by hand (`python3 tasks.py db.revision --message "..." --empty`): the index the Post
model declares, built without blocking writes to a live table. Autogenerate would emit a plain
CREATE INDEX, which locks out INSERT/UPDATE/DELETE on posts for the whole build.

Revision ID: 7db54d905bb0
Revises: d96448aa1d8d
Create Date: 2026-11-26 06:38:47.417221

"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op

# revision identifiers, used by Alembic.
revision: str = "7db54d905bb0"
down_revision: str | Sequence[str] | None = "d96448aa1d8d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# --8<-- [start:concurrently]
def upgrade() -> None:
    # PostgreSQL refuses CONCURRENTLY inside a transaction block, and Alembic runs migrations
    # in one: the autocommit block commits what ran before and runs this statement on its own.
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_posts_created_at_id ON posts (created_at, id)")
    if not context.is_offline_mode():
        _fail_if_invalid("ix_posts_created_at_id")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_posts_created_at_id")


def _fail_if_invalid(index: str) -> None:
    # A concurrent build that fails (or is cancelled) leaves an INVALID index behind, which
    # IF NOT EXISTS would then silently accept on the next run.
    valid = op.get_bind().scalar(
        sa.text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": index}
    )
    if not valid:
        raise RuntimeError(
            f"index {index} is invalid (an earlier concurrent build failed): "
            f"run DROP INDEX CONCURRENTLY {index}; then upgrade again"
        )


# --8<-- [end:concurrently]
