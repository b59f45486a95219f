"""Fixtures for the migration tests: an empty database on the suite's real server, per test.

Every test here starts from nothing and builds the schema with the project's own migrations,
so it sees exactly what `alembic upgrade` does on a fresh or a part-way database. The databases
come from `new_database` / `scratch_url` (tests/conftest.py); the session database is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from tests.support import alembic_config as project_alembic_config
from tests.support import sync_url


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
