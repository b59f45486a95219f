"""Fixtures for the worker tests: a database of their own, migrated, with real worker processes.

Workers commit, and a test counts every job in the queue: they get a database of their own
(migrated once per module), never the session's rolled-back one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import App, SyncPsycopgConnector

from tests.jobs.workers import RUNS_TABLE, conninfo
from tests.support import scratch_database


@pytest.fixture(scope="module")
def jobs_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "jobs", migrated=True) as url:
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute(RUNS_TABLE)
        yield url


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
