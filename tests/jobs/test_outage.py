"""ML07: a job worker outlives its database: PostgreSQL stopped and started again under it.

The worker runs on a server of the test's own (tests/hardening/servers.py, as the API's fault
tests do), which `pg_ctl stop -m fast` takes away: every connection ends, and new ones are
refused until `pg_ctl start`. Nobody restarts the worker: the same process takes jobs again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import SyncPsycopgConnector

from alembic import command
from tests.hardening.servers import DedicatedServer, dedicated_server
from tests.jobs.test_workers import status_of, workers_up
from tests.jobs.workers import RUNS_TABLE, conninfo, log_of, wait_for, worker
from tests.support import alembic_config

pytestmark = pytest.mark.system("a PostgreSQL of its own stopped and started under a worker process")

Db = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def server() -> Iterator[DedicatedServer]:
    with dedicated_server("outage") as server:
        command.upgrade(alembic_config(server.url), "head")
        with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
            conn.execute(RUNS_TABLE)
        yield server


def defer(server: DedicatedServer, task: str, **arguments: Any) -> int:
    """Queue a job, on a connection of its own (none is kept across the outage)."""
    from example_app.jobs.queue import queue

    with queue.replace_connector(SyncPsycopgConnector(conninfo=conninfo(server.url))) as app, app.open():
        job_id = app.configure_task(f"test:{task}").defer(**arguments)
    return job_id


def statuses(server: DedicatedServer, *job_ids: int) -> list[str]:
    with psycopg.connect(conninfo(server.url), autocommit=True) as db:
        return [status_of(db, job_id) for job_id in job_ids]


def registered_workers(server: DedicatedServer) -> int:
    with psycopg.connect(conninfo(server.url), autocommit=True) as db:
        return workers_up(db)


# --8<-- [start:outage_test]
@pytest.mark.pattern("ML07")
def test_a_worker_takes_jobs_again_after_its_database_restarts(
    server: DedicatedServer, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    # JOB_SHUTDOWN_SECONDS: the job running at the outage may take its time to end (the gate)
    with worker(server.url, tmp_path, "w1", JOB_SHUTDOWN_SECONDS="120") as process:
        wait_for(lambda: registered_workers(server) == 1, 60, "the worker to be up")
        running = defer(server, "run_until_gate", n=1, gate=str(gate))
        wait_for(lambda: statuses(server, running) == ["doing"], 30, "the first job to start")
        waiting = defer(server, "record_run", n=2)  # concurrency 1: it waits behind the first

        with server.stopped():  # pg_ctl stop -m fast; pg_ctl start when the block ends
            time.sleep(3)  # six heartbeats missed: the worker has seen the outage
        gate.touch()  # the running job ends once the database is back
        after = defer(server, "record_run", n=3)

        jobs = (running, waiting, after)
        wait_for(lambda: statuses(server, *jobs) == ["succeeded"] * 3, 60, "the three jobs to succeed")
        assert process.poll() is None  # the same process, never restarted
    log = log_of(tmp_path, "w1")
    assert re.search(r"job worker stopped \(.+\); taking jobs again in \d", log), log
    with psycopg.connect(conninfo(server.url), autocommit=True) as db:
        runs = db.execute("SELECT n FROM test_job_runs ORDER BY n").fetchall()
    assert runs == [(1,), (2,), (3,)]  # each ran once


# --8<-- [end:outage_test]


@pytest.mark.pattern("ML07")
def test_an_idle_worker_waits_for_its_database_and_goes_on(server: DedicatedServer, tmp_path: Path) -> None:
    """Stopped longer than the first waits: the worker's attempts fail until the server is back."""
    with worker(server.url, tmp_path, "idle") as process:
        wait_for(lambda: registered_workers(server) == 1, 60, "the worker to be up")
        with server.stopped():
            time.sleep(8)
        job_id = defer(server, "record_run", n=4)
        wait_for(lambda: statuses(server, job_id) == ["succeeded"], 60, "the job to succeed")
        assert process.poll() is None
    assert "taking jobs again in 1 s" in log_of(tmp_path, "idle")
