"""The pgvector and job-queue revisions: one line without pgvector, a clean downgrade, the copy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest
from alembic.config import Config
from procrastinate.schema import SchemaManager
from sqlalchemy import Engine, text

from alembic import command
from devtools import postgres_provider as pp
from tests.migrations.schema import revisions
from tests.support import ROOT

EMBEDDING, QUEUE = "928435d03ec6", "d258726f3557"
BEFORE = revisions()[revisions().index(EMBEDDING) - 1]
SCHEMA_COPY = ROOT / "alembic" / "sql" / "procrastinate-3.10.0-schema.sql"


@pytest.fixture
def server_without_pgvector(tmp_path: Path, scratch_url: str) -> Iterator[str]:
    """A database whose server has no pgvector: Debian's PostgreSQL when installed, else a
    database where the catalogue the revision asks shows none (the same question, answered no)."""
    without = [(o, p) for o, p in pp._candidate_pg_ctls() if not pp.has_pgvector(p) and pp._usable(p) is None]
    if without:
        origin, pg_ctl = without[0]
        with pp.local_server(origin, pg_ctl, data_home=None, dbname="novector") as server:
            yield server.url
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from tests.support import sync_url

    engine = create_engine(sync_url(scratch_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE SCHEMA shadow")
        conn.exec_driver_sql(
            "CREATE VIEW shadow.pg_available_extensions AS "
            "SELECT * FROM pg_catalog.pg_available_extensions WHERE name <> 'vector'"
        )
        conn.exec_driver_sql(
            f'ALTER DATABASE "{make_url(scratch_url).database}" SET search_path = shadow, pg_catalog, public'
        )
    engine.dispose()
    yield scratch_url


# --8<-- [start:no_pgvector_test]
@pytest.mark.system("a second server, without pgvector")
@pytest.mark.pattern("ML06", "MG03")
def test_a_server_without_pgvector_fails_the_upgrade_in_one_line(server_without_pgvector: str) -> None:
    env = {**os.environ, "DATABASE_URL": server_without_pgvector}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("alembic: this PostgreSQL server has no pgvector extension")
    assert "python3 tasks.py docker-image" in last
    assert "pip install pgserver" in last


# --8<-- [end:no_pgvector_test]


@pytest.mark.pattern("ML07", "MG03")
def test_the_queue_schema_is_the_installed_procrastinates() -> None:
    # A procrastinate upgrade may change its schema: then a new revision applies its migration
    # files (procrastinate/sql/migrations/) from 3.10.0 on, and this copy stays as it is.
    assert procrastinate.__version__ == "3.10.0", "add a revision with procrastinate's migrations"
    assert SCHEMA_COPY.read_text(encoding="utf-8") == SchemaManager.get_schema()


def queue_objects(engine: Engine) -> dict[str, int]:
    queries = {
        "tables": "SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%' AND relkind = 'r'",
        "types": "SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%'",
        "routines": "SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%'",
        "vector": "SELECT count(*) FROM pg_extension WHERE extname = 'vector'",
    }
    with engine.connect() as conn:
        return {kind: int(conn.scalar(text(sql)) or 0) for kind, sql in queries.items()}


@pytest.mark.pattern("ML07", "MG04", "D09")
def test_downgrading_removes_the_queue_and_the_extension(cfg: Config, scratch_engine: Engine) -> None:
    command.upgrade(cfg, "head")
    created = queue_objects(scratch_engine)
    assert created["tables"] == 4
    assert created["routines"] > 10
    assert created["vector"] == 1
    command.downgrade(cfg, BEFORE)
    assert queue_objects(scratch_engine) == {"tables": 0, "types": 0, "routines": 0, "vector": 0}
    command.upgrade(cfg, "head")  # and back: nothing was left behind to collide with
    assert queue_objects(scratch_engine) == created
