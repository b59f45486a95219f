"""Rules the schema keeps: migrations only (never create_all), named constraints, real FKs."""

from __future__ import annotations

import ast

import pytest
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlmodel import SQLModel

import example_app.models  # noqa: F401  (registers the tables)
from alembic import command
from tests.migrations.schema import revisions, version
from tests.support import ROOT

USERS = revisions()[1]


# --8<-- [start:create_all_conflict]
@pytest.mark.pattern("E17", "DB03")
def test_create_all_then_upgrade_fails_with_duplicate_table(cfg: Config, scratch_engine: Engine) -> None:
    SQLModel.metadata.create_all(scratch_engine)  # an init_db() at startup...
    with pytest.raises(ProgrammingError, match='relation "users" already exists') as failure:
        command.upgrade(cfg, "head")  # ...and then the migrations
    assert getattr(failure.value.orig, "sqlstate", None) == "42P07"  # duplicate_table
    assert version(scratch_engine) is None  # nothing recorded: Alembic cannot take over


# --8<-- [end:create_all_conflict]


@pytest.mark.pattern("E17", "DB03")
def test_the_app_never_calls_create_all() -> None:
    """Only migrations build the schema: no create_all (nor drop_all) anywhere in example_app/."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "example_app").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute | ast.Name)
        and (node.attr if isinstance(node, ast.Attribute) else node.id) in {"create_all", "drop_all"}
    ]
    assert len(list((ROOT / "example_app").rglob("*.py"))) > 10  # the scan did see the app
    assert found == []


# The names the naming convention (example_app/models/base.py) gives, and nothing else.
CONVENTION_NAMES = {
    "pk_users",
    "ck_users_email_lowercase",
    "ix_users_email",
    "pk_posts",
    "fk_posts_author_id_users",
    "ix_posts_author_id",
    "ix_posts_created_at_id",
    "pk_predictions",
    "ix_predictions_created_at_id",
    "ix_predictions_output",
    "ix_posts_embedding",
    "pk_model_versions",
    "pk_model_aliases",
    "fk_model_aliases_name_model_versions",
    "fk_predictions_shadow_of_predictions",
    "ix_predictions_shadow_of",
}


@pytest.mark.pattern("MG08", "E21")
def test_constraint_and_index_names_are_the_conventions(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, "head")
    with scratch_engine.connect() as conn:
        live = set(
            conn.scalars(
                text(
                    "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                    "AND conrelid::regclass::text NOT LIKE 'procrastinate%' "  # the queue's: its names
                    "UNION SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                    "AND tablename NOT LIKE 'procrastinate%'"
                )
            )
        )
    assert live - {"alembic_version_pkc"} == CONVENTION_NAMES
    # The models agree: the convention derives the same names from the metadata.
    declared = {
        str(name)
        for table in SQLModel.metadata.sorted_tables
        for name in [*(c.name for c in table.constraints), *(i.name for i in table.indexes)]
    }
    assert declared == CONVENTION_NAMES


@pytest.mark.pattern("MG05", "E21")
def test_a_post_needs_an_existing_author(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, "head")
    with pytest.raises(IntegrityError) as failure, scratch_engine.begin() as conn:
        conn.execute(text("INSERT INTO posts (title, slug, body, author_id) VALUES ('t', 't', '', 424242)"))
    assert type(failure.value.orig).__name__ == "ForeignKeyViolation"
    assert failure.value.orig.diag.constraint_name == "fk_posts_author_id_users"  # type: ignore[union-attr]

    # ON DELETE CASCADE: deleting the author deletes their posts, in the database.
    with scratch_engine.begin() as conn:
        author = conn.scalar(
            text("INSERT INTO users (email, hashed_password, name) VALUES ('a@x.org', 'x', 'A') RETURNING id")
        )
        conn.execute(
            text("INSERT INTO posts (title, slug, body, author_id) VALUES ('t', 't', '', :a)"), {"a": author}
        )
        conn.execute(text("DELETE FROM users WHERE id = :a"), {"a": author})
        assert conn.scalar(text("SELECT count(*) FROM posts")) == 0

    command.downgrade(cfg, USERS)  # the posts revision's downgrade runs
    with scratch_engine.connect() as conn:
        assert conn.scalar(text("SELECT to_regclass('posts')")) is None
        assert conn.scalar(text("SELECT to_regclass('ix_posts_author_id')")) is None
        assert conn.scalar(text("SELECT to_regclass('users')")) == "users"
