"""The "add posts slug" data migration: nullable column, batched backfill, then NOT NULL."""

from __future__ import annotations

import math
from types import ModuleType

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from alembic import command
from example_app.services.slugs import SLUG_MAX_LENGTH, slugify
from tests.migrations.schema import revisions, version
from tests.support import alembic_config

POSTS, POSTS_SLUG = revisions()[2:4]

TITLES = [
    "Hello, World!",
    "  Leading and trailing spaces  ",
    "MiXeD CaSe Title 42",
    "snake_case & kebab-case -- and (parentheses)",
    "tabs\tand\nnewlines",
    "Café crème brûlée",  # accents are separators: no transliteration in either rule
    "Ünïcödé only: 日本語",
    "İstanbul",  # Python lower-cases İ to 'i' + a combining dot; the rule never lower-cases it
    "\u212a Kelvin sign",  # lower() of the Kelvin sign is an ASCII 'k' in Python
    "\uff26\uff35\uff2c\uff2c width \u2460",  # fullwidth letters, a circled digit
    "emoji 🚀 launch",
    "!!!",  # nothing left: the fallback
    "",
    "a" * 255,
]
# Longer than posts.title allows, so only the pure rule sees them: the cap at 255 and a cut
# that ends on a separator.
LONG_TITLES = ["b" * 300, "c" * 254 + " d" + "e" * 10, "x " * 200]


def slug_revision() -> ModuleType:
    return ScriptDirectory.from_config(alembic_config("unused")).get_revision(POSTS_SLUG).module


@pytest.mark.pattern("MG03")
def test_the_sql_rule_equals_slugify(scratch_engine: Engine) -> None:
    """The backfill's SQL and the app's slugify agree, title by title."""
    sql = text(f"SELECT {slug_revision().SLUG_SQL} FROM (VALUES (:title, :id)) AS posts(title, id)")
    with scratch_engine.connect() as conn:
        for post_id, title in enumerate(TITLES + LONG_TITLES, start=1):
            expected = slugify(title, f"post-{post_id}")
            assert conn.scalar(sql, {"title": title, "id": post_id}) == expected, title
            assert 0 < len(expected) <= SLUG_MAX_LENGTH
            assert not expected.startswith("-")
            assert not expected.endswith("-")
    assert slugify("Hello, World!", "post-1") == "hello-world"
    assert slugify("!!!", "post-7") == "post-7"
    assert slugify("c" * 254 + " d", "p") == "c" * 254  # cut at the separator, which is trimmed


@pytest.mark.pattern("MG03", "MG04", "D09")
def test_backfill_on_real_rows_in_committed_batches(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, POSTS)
    bulk = 2500 - len(TITLES)
    with scratch_engine.begin() as conn:
        author = conn.scalar(
            text("INSERT INTO users (email, hashed_password, name) VALUES ('a@x.org', 'x', 'A') RETURNING id")
        )
        for title in TITLES:
            conn.execute(
                text("INSERT INTO posts (title, body, author_id) VALUES (:title, '', :author)"),
                {"title": title, "author": author},
            )
        conn.execute(
            text(
                "INSERT INTO posts (title, body, author_id) "
                "SELECT 'Bulk post #' || g, '', :a FROM generate_series(1, :n) g"
            ),
            {"a": author, "n": bulk},
        )

    # What autogenerate proposed for this revision cannot run on a table with rows.
    refused = 'column "slug" of relation "posts" contains null values'
    with pytest.raises(IntegrityError, match=refused), scratch_engine.begin() as conn:
        conn.execute(text("ALTER TABLE posts ADD COLUMN slug VARCHAR(255) NOT NULL"))

    command.upgrade(cfg, "+1")
    assert version(scratch_engine) == POSTS_SLUG
    with scratch_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, title, slug, xmin::text AS xmin FROM posts ORDER BY id")).all()
        nullable = conn.scalar(
            text(
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_name = 'posts' AND column_name = 'slug'"
            )
        )
    assert len(rows) == 2500
    assert [row.slug for row in rows] == [slugify(row.title, f"post-{row.id}") for row in rows]
    assert rows[0].slug == "hello-world"
    assert rows[-1].slug == f"bulk-post-{bulk}"
    assert nullable == "NO"
    # Each batch committed on its own: the rows carry one transaction id per batch.
    batch_size = slug_revision().BATCH_SIZE
    assert len({row.xmin for row in rows}) == math.ceil(len(rows) / batch_size) == 3

    command.downgrade(cfg, "-1")
    with scratch_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM posts")) == 2500
        columns = conn.scalars(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = 'posts'")
        )
        assert "slug" not in set(columns)
    command.upgrade(cfg, "+1")
    with scratch_engine.connect() as conn:
        again = conn.execute(text("SELECT id, slug FROM posts ORDER BY id")).all()
    assert [tuple(row) for row in again] == [(row.id, row.slug) for row in rows]
