"""The guide's "Database workflow" commands, through alembic's command line, on a scratch database.

`python3 tasks.py db.current`, `db.history` and `db.reset` run exactly these alembic commands
(tasks.py); tests/docs/test_shell_commands.py runs the tasks themselves, as processes.
"""

from __future__ import annotations

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from alembic import command
from tests.migrations.schema import head, revisions, snapshot, version
from tests.migrations.workspace import alembic
from tests.support import sync_url

USERS, POSTS, POSTS_SLUG = revisions()[1:4]


@pytest.mark.pattern("MG06")
def test_current_and_history_name_the_head(cfg: Config, scratch_url: str) -> None:
    command.upgrade(cfg, "head")
    # `alembic current`, plain and as the db.current task runs it (--verbose)
    assert alembic(["current"], scratch_url).stdout.strip() == f"{head()} (head)"
    assert f"Rev: {head()} (head)" in alembic(["current", "--verbose"], scratch_url).stdout
    history = alembic(["history", "--indicate-current"], scratch_url).stdout.splitlines()  # db.history
    newest = ScriptDirectory.from_config(cfg).get_revision(head())
    assert newest is not None
    assert history[0] == f"{newest.down_revision} -> {head()} (head) (current), {newest.doc}"
    assert history[-1] == f"<base> -> {revisions()[0]}, initial empty schema"
    assert len(history) == len(revisions())


# --8<-- [start:dev_reset]
@pytest.mark.pattern("TS04", "D09")
def test_development_reset_rebuilds_an_empty_schema(
    cfg: Config, scratch_url: str, scratch_engine: Engine
) -> None:
    command.upgrade(cfg, "head")
    with scratch_engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, hashed_password, name) VALUES ('a@x.org', 'x', 'A')"))
    schema = snapshot(scratch_engine)

    alembic(["downgrade", "base"], scratch_url)  # what `python3 tasks.py db.reset` runs
    alembic(["upgrade", "head"], scratch_url)

    assert version(scratch_engine) == head()
    assert snapshot(scratch_engine) == schema
    with scratch_engine.connect() as conn:  # a reset is for development: the data is gone
        assert conn.scalar(text("SELECT count(*) FROM users")) == 0


# --8<-- [end:dev_reset]


def statements(script: str) -> list[str]:
    """A script's statements as psql reads them: a `;` that ends a line, outside $$ ... $$."""
    found, current, quoted = [], [], False
    for line in script.splitlines():
        current.append(line)
        quoted ^= line.count("$$") % 2 == 1  # procrastinate's functions have ;-lines inside
        if not quoted and line.rstrip().endswith(";"):
            found.append("\n".join(current))
            current = []
    return found


# --8<-- [start:offline_sql]
@pytest.mark.pattern("MG07", "E19")
def test_offline_sql_for_the_pending_range_only(
    cfg: Config, scratch_url: str, scratch_engine: Engine
) -> None:
    command.upgrade(cfg, POSTS)  # part-way: two revisions pending

    # The guide's `alembic upgrade head --sql` does not look at the database: it starts at base.
    from_base = alembic(["upgrade", "head", "--sql"], scratch_url).stdout
    assert "CREATE TABLE users" in from_base
    assert "CREATE TABLE posts" in from_base

    # The pending range is <current>:head.
    current = alembic(["current"], scratch_url).stdout.split()[0]
    assert current == POSTS
    pending = alembic(["upgrade", f"{current}:head", "--sql"], scratch_url).stdout
    assert "CREATE TABLE users" not in pending
    assert "CREATE TABLE posts" not in pending
    assert "ALTER TABLE posts ADD COLUMN IF NOT EXISTS slug VARCHAR(255)" in pending
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_posts_created_at_id" in pending
    assert f"UPDATE alembic_version SET version_num='{head()}'" in pending
    assert version(scratch_engine) == POSTS  # --sql never touches the database
    # --8<-- [end:offline_sql]

    # And the script does the job: run statement by statement (as psql would), the database
    # reaches head with no drift from the models.
    with psycopg.connect(sync_url(scratch_url).replace("+psycopg", ""), autocommit=True) as conn:
        for statement in statements(pending):
            sql = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if sql:
                conn.execute(sql)
    assert version(scratch_engine) == head()
    command.check(cfg)
