"""Fixtures for the migration tests: empty databases on the suite's real server, one per use.

Every test here starts from nothing and builds the schema with the project's own migrations,
so it sees exactly what `alembic upgrade` does on a fresh or a part-way database. The session
database of tests/conftest.py is never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.migrations.schema import sync_url
from tests.support import alembic_config as project_alembic_config

NewDatabase = Callable[[], str]


@pytest.fixture
def new_database(database_url: str) -> Iterator[NewDatabase]:
    """A factory of new, empty databases (asyncpg URLs, as the app uses); dropped after the test."""
    admin = create_engine(sync_url(database_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names: list[str] = []

    def make() -> str:
        name = f"mig_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        return make_url(database_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def scratch_url(new_database: NewDatabase) -> str:
    return new_database()


@pytest.fixture
def scratch_engine(scratch_url: str) -> Iterator[Engine]:
    """A synchronous engine (psycopg 3) on the scratch database, for the tests' own queries."""
    engine = create_engine(sync_url(scratch_url), poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def cfg(scratch_url: str) -> Config:
    """The project's alembic.ini, aimed at the scratch database (env.py runs on asyncpg)."""
    return project_alembic_config(scratch_url)


# --8<-- [start:pytest_alembic_fixtures]
# pytest-alembic's two fixtures. It hands `alembic_engine` to env.py as
# config.attributes["connection"]; a synchronous engine (psycopg 3) on the same scratch
# database keeps its runner out of asyncio.
@pytest.fixture
def alembic_config(cfg: Config) -> Config:
    return cfg


@pytest.fixture
def alembic_engine(scratch_engine: Engine) -> Engine:
    return scratch_engine


# --8<-- [end:pytest_alembic_fixtures]
