"""Fixtures for the worker tests: a database of their own, migrated, with real worker processes.

Workers commit, and a test counts every job in the queue: they get a database of their own
(migrated once per module), never the session's rolled-back one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import App, SyncPsycopgConnector
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from alembic import command
from tests.jobs.workers import RUNS_TABLE, conninfo
from tests.support import alembic_config, sync_url


@pytest.fixture(scope="module")
def jobs_url(database_url: str) -> Iterator[str]:
    admin = create_engine(sync_url(database_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"jobs_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), "head")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute(RUNS_TABLE)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def jobs_db(jobs_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the workers' database; the queue is emptied after each test."""
    with psycopg.connect(conninfo(jobs_url), autocommit=True) as conn:
        yield conn
        conn.execute("TRUNCATE procrastinate_jobs, procrastinate_workers, test_job_runs CASCADE")


@pytest.fixture
def jobs_app(jobs_url: str) -> Iterator[App]:
    """The app's queue, on the workers' database, for the test to defer jobs (synchronously)."""
    from example_app.jobs.queue import queue  # imported late: settings exist once the server is up

    app = queue.with_connector(SyncPsycopgConnector(conninfo=conninfo(jobs_url)))
    with app.open():
        yield app


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
