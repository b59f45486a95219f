"""Step through the history one revision at a time, and check the schema after every step.

What each revision declares is written out below, as the catalogues show it; after every
`upgrade +1` and `downgrade -1` the live schema must equal the sum of the declarations so far.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import example_app.models  # noqa: F401  (registers the tables for the create_all comparison)
from alembic import command
from example_app.services.slugs import slugify
from tests.migrations.schema import head, revisions, snapshot, version
from tests.support import NewDatabase, alembic_config, sync_url

INITIAL, USERS, POSTS, POSTS_SLUG, POSTS_CREATED_AT_INDEX, PREDICTIONS, USERS_IS_SUPERUSER, *LATER = (
    revisions()
)
POSTS_EMBEDDING, PROCRASTINATE_SCHEMA, PREDICTIONS_REQUEST_ID = "928435d03ec6", "d258726f3557", "5b0f3c1d9e2a"
MODEL_REGISTRY, PREDICTIONS_SHADOW_OF = "8da4f0e032ec", "3c5e7a9b1d20"

# What each revision adds to the schema (none of them removes anything on the way up).
DECLARED: dict[str, set[str]] = {
    INITIAL: set(),
    USERS: {
        "table users",
        "column users.id integer NOT NULL DEFAULT nextval('users_id_seq'::regclass)",
        "column users.email character varying(255) NOT NULL",
        "column users.hashed_password character varying(255) NOT NULL",
        "column users.name character varying(100) NOT NULL",
        "column users.is_active boolean NOT NULL DEFAULT true",
        "column users.created_at timestamp with time zone NOT NULL DEFAULT now()",
        "column users.updated_at timestamp with time zone NOT NULL DEFAULT now()",
        "constraint users pk_users PRIMARY KEY (id)",
        "constraint users ck_users_email_lowercase CHECK (((email)::text = lower((email)::text)))",
        "index CREATE UNIQUE INDEX pk_users ON public.users USING btree (id)",
        "index CREATE UNIQUE INDEX ix_users_email ON public.users USING btree (email)",
    },
    POSTS: {
        "table posts",
        "column posts.id integer NOT NULL DEFAULT nextval('posts_id_seq'::regclass)",
        "column posts.title character varying(255) NOT NULL",
        "column posts.body text NOT NULL",
        "column posts.author_id integer NOT NULL",
        "column posts.tags jsonb NOT NULL DEFAULT '[]'::jsonb",
        "column posts.created_at timestamp with time zone NOT NULL DEFAULT now()",
        "column posts.updated_at timestamp with time zone NOT NULL DEFAULT now()",
        "constraint posts pk_posts PRIMARY KEY (id)",
        "constraint posts fk_posts_author_id_users "
        "FOREIGN KEY (author_id) REFERENCES users(id) ON DELETE CASCADE",
        "index CREATE UNIQUE INDEX pk_posts ON public.posts USING btree (id)",
        "index CREATE INDEX ix_posts_author_id ON public.posts USING btree (author_id)",
    },
    POSTS_SLUG: {"column posts.slug character varying(255) NOT NULL"},
    POSTS_CREATED_AT_INDEX: {
        "index CREATE INDEX ix_posts_created_at_id ON public.posts USING btree (created_at, id)",
    },
    PREDICTIONS: {
        "table predictions",
        "column predictions.id bigint NOT NULL DEFAULT nextval('predictions_id_seq'::regclass)",
        "column predictions.model_name character varying(100) NOT NULL",
        "column predictions.model_version character varying(50) NOT NULL",
        "column predictions.model_sha256 character varying(64) NOT NULL",
        "column predictions.input jsonb NOT NULL",
        "column predictions.output jsonb NOT NULL",
        "column predictions.latency_ms double precision NOT NULL",
        "column predictions.created_at timestamp with time zone NOT NULL DEFAULT now()",
        "constraint predictions pk_predictions PRIMARY KEY (id)",
        "index CREATE UNIQUE INDEX pk_predictions ON public.predictions USING btree (id)",
        "index CREATE INDEX ix_predictions_created_at_id ON public.predictions USING btree (created_at, id)",
        "index CREATE INDEX ix_predictions_output ON public.predictions USING gin (output jsonb_path_ops)",
    },
    USERS_IS_SUPERUSER: {"column users.is_superuser boolean NOT NULL DEFAULT false"},
    POSTS_EMBEDDING: {  # and the vector extension, which a snapshot does not list
        "column posts.embedding USER-DEFINED NULL",
        "index CREATE INDEX ix_posts_embedding ON public.posts USING hnsw (embedding vector_cosine_ops) "
        "WITH (m='16', ef_construction='64')",
    },
    # procrastinate's own tables, types and functions: not the app's schema, left out of a snapshot
    # (tests/migrations/test_vector_and_queue.py checks they come and go).
    PROCRASTINATE_SCHEMA: set(),
    PREDICTIONS_REQUEST_ID: {"column predictions.request_id character varying(64) NULL"},
    MODEL_REGISTRY: {  # and a trigger that NOTIFYs model_aliases (tests/ml/test_model_versions.py)
        "table model_versions",
        "column model_versions.name character varying(100) NOT NULL",
        "column model_versions.version character varying(50) NOT NULL",
        "column model_versions.artifact_path character varying(500) NOT NULL",
        "column model_versions.sha256 character varying(64) NOT NULL",
        "column model_versions.metrics jsonb NOT NULL",
        "column model_versions.created_at timestamp with time zone NOT NULL DEFAULT now()",
        "constraint model_versions pk_model_versions PRIMARY KEY (name, version)",
        "index CREATE UNIQUE INDEX pk_model_versions ON public.model_versions USING btree (name, version)",
        "table model_aliases",
        "column model_aliases.name character varying(100) NOT NULL",
        "column model_aliases.alias character varying(50) NOT NULL",
        "column model_aliases.version character varying(50) NOT NULL",
        "column model_aliases.updated_at timestamp with time zone NOT NULL DEFAULT now()",
        "constraint model_aliases pk_model_aliases PRIMARY KEY (name, alias)",
        "constraint model_aliases fk_model_aliases_name_model_versions "
        "FOREIGN KEY (name, version) REFERENCES model_versions(name, version)",
        "index CREATE UNIQUE INDEX pk_model_aliases ON public.model_aliases USING btree (name, alias)",
    },
    PREDICTIONS_SHADOW_OF: {
        "column predictions.shadow_of bigint NULL",
        "constraint predictions fk_predictions_shadow_of_predictions "
        "FOREIGN KEY (shadow_of) REFERENCES predictions(id) ON DELETE CASCADE",
        "index CREATE INDEX ix_predictions_shadow_of ON public.predictions USING btree (shadow_of) "
        "WHERE (shadow_of IS NOT NULL)",
    },
}


def schema_at(revision: str) -> set[str]:
    """The schema a database must have at `revision`: every declaration up to it."""
    history = revisions()
    return set().union(*(DECLARED[rev] for rev in history[: history.index(revision) + 1]))


@pytest.mark.pattern("MG03")
def test_every_revision_is_declared_here() -> None:
    # A new revision must say what it does in DECLARED, or the step tests would not see it.
    assert list(DECLARED) == revisions()


# --8<-- [start:step_by_step]
@pytest.mark.pattern("MG03", "MG04", "D09", "MG05")
def test_upgrade_plus_one_then_downgrade_minus_one(cfg: Config, scratch_engine: Engine) -> None:
    for revision in revisions():
        command.upgrade(cfg, "+1")
        assert version(scratch_engine) == revision
        assert snapshot(scratch_engine) == schema_at(revision)
    for previous in reversed(revisions()[:-1]):
        command.downgrade(cfg, "-1")
        assert version(scratch_engine) == previous
        assert snapshot(scratch_engine) == schema_at(previous)
    command.downgrade(cfg, "-1")
    assert version(scratch_engine) is None
    assert snapshot(scratch_engine) == set()


# --8<-- [end:step_by_step]


@pytest.mark.pattern("MG04", "MG05")
def test_downgrade_to_a_revision_by_id(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, "head")
    command.downgrade(cfg, USERS)  # `alembic downgrade 482500eb8bf1`: posts and its index go
    assert version(scratch_engine) == USERS
    assert snapshot(scratch_engine) == schema_at(USERS)
    command.upgrade(cfg, POSTS)  # `alembic upgrade <rev>` stops there, not at head
    assert version(scratch_engine) == POSTS
    assert snapshot(scratch_engine) == schema_at(POSTS)


@pytest.mark.pattern("W02", "D08", "DB03")
def test_head_schema_equals_the_models(new_database: NewDatabase) -> None:
    """Migrations to head build exactly what the models describe (as create_all would)."""
    migrated_url, created_url = new_database(), new_database()
    command.upgrade(alembic_config(migrated_url), "head")
    migrated, created = (
        create_engine(sync_url(url), poolclass=NullPool) for url in (migrated_url, created_url)
    )
    try:
        SQLModel.metadata.create_all(created)
        assert snapshot(migrated) == snapshot(created) == schema_at(head())
    finally:
        migrated.dispose()
        created.dispose()


def _rows(engine: Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(text(sql)).mappings()]


@pytest.mark.pattern("D09", "MG04")
def test_data_survives_a_round_trip_of_a_revision_that_does_not_touch_it(
    cfg: Config, scratch_engine: Engine
) -> None:
    command.upgrade(cfg, "head")
    with scratch_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, hashed_password, name) VALUES "
                "('ada@example.com', 'x', 'Ada'), ('alan@example.com', 'y', 'Alan')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO posts (title, slug, body, author_id, tags) "
                "SELECT 'Notes on the ' || name || ' engine', 'to-be-recomputed', 'body', id, '[\"ml\"]' "
                "FROM users"
            )
        )
    users = _rows(scratch_engine, "SELECT * FROM users ORDER BY id")
    posts = _rows(scratch_engine, "SELECT * FROM posts ORDER BY id")
    later = {"slug", "embedding"}  # columns of revisions after POSTS
    without_slug = [
        {column: value for column, value in post.items() if column not in later} for post in posts
    ]

    command.downgrade(cfg, POSTS)  # undoes the slug and the index revisions (and is_superuser)
    before_superusers = [
        {column: value for column, value in u.items() if column != "is_superuser"} for u in users
    ]
    assert _rows(scratch_engine, "SELECT * FROM users ORDER BY id") == before_superusers
    assert _rows(scratch_engine, "SELECT * FROM posts ORDER BY id") == without_slug

    command.upgrade(cfg, "head")
    assert _rows(scratch_engine, "SELECT * FROM users ORDER BY id") == users
    again = _rows(scratch_engine, "SELECT id, title, slug FROM posts ORDER BY id")
    assert [p["slug"] for p in again] == [slugify(p["title"], f"post-{p['id']}") for p in again]
    assert [p["slug"] for p in again] == ["notes-on-the-ada-engine", "notes-on-the-alan-engine"]
