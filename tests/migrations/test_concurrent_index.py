"""MG02: an empty revision for SQL that must run outside a transaction (CREATE INDEX CONCURRENTLY)."""

from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from alembic import command
from tests.migrations.schema import revisions, version

POSTS_SLUG, POSTS_CREATED_AT_INDEX = revisions()[3:5]
CREATE = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_posts_created_at_id ON posts (created_at, id)"


def index_state(engine: Engine) -> bool | None:
    """indisvalid of ix_posts_created_at_id; None when there is no such index."""
    with engine.connect() as conn:
        valid: bool | None = conn.scalar(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_posts_created_at_id')")
        )
        return valid


@pytest.mark.pattern("MG02")
def test_concurrently_needs_the_autocommit_block(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, POSTS_SLUG)
    with scratch_engine.connect() as conn:
        context = MigrationContext.configure(conn)
        op = Operations(context)
        # Alembic runs every migration inside a transaction: there, PostgreSQL refuses.
        refused = "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
        with pytest.raises(DBAPIError, match=refused), context.begin_transaction():
            op.execute(CREATE)
        assert index_state(scratch_engine) is None
        # The revision's way: the same statement inside autocommit_block() runs on its own.
        with context.begin_transaction(), context.autocommit_block():
            op.execute(CREATE)
    assert index_state(scratch_engine) is True


@pytest.mark.pattern("MG02", "MG03", "MG04")
def test_the_revision_builds_a_valid_index_and_drops_it(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, POSTS_CREATED_AT_INDEX)
    assert version(scratch_engine) == POSTS_CREATED_AT_INDEX
    assert index_state(scratch_engine) is True
    command.downgrade(cfg, "-1")
    assert index_state(scratch_engine) is None
    command.upgrade(cfg, "head")
    assert index_state(scratch_engine) is True


@pytest.mark.pattern("MG02")
def test_an_invalid_leftover_index_stops_the_upgrade(cfg: Config, scratch_engine: Engine) -> None:
    """A failed concurrent build leaves an INVALID index; IF NOT EXISTS alone would accept it."""
    command.upgrade(cfg, POSTS_SLUG)
    with scratch_engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_posts_created_at_id ON posts (created_at, id)"))
        # What a cancelled CREATE INDEX CONCURRENTLY leaves behind (needs a superuser).
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_posts_created_at_id'::regclass"
            )
        )
    with pytest.raises(RuntimeError, match="index ix_posts_created_at_id is invalid"):
        command.upgrade(cfg, "+1")
    assert version(scratch_engine) == POSTS_SLUG
    with scratch_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP INDEX CONCURRENTLY ix_posts_created_at_id"))  # the advice in the error
    command.upgrade(cfg, "+1")
    assert index_state(scratch_engine) is True
