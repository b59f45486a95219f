"""Real worker processes on a real queue: exactly once, retries with backoff, a killed worker."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import App, PsycopgConnector

from example_app.jobs.queue import conninfo, queue
from example_app.jobs.tasks import recover_stalled_jobs
from tests.jobs.workers import log_of, wait_for, worker

pytestmark = pytest.mark.system("worker processes, one killed")

Db = psycopg.Connection[Any]


def statuses(db: Db, task: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name = %s GROUP BY status", (task,)
    ).fetchall()
    return {status: count for status, count in rows}


def status_of(db: Db, job_id: int) -> str:
    row = db.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return str(row[0])


def events_of(db: Db, job_id: int) -> list[str]:
    rows = db.execute(
        "SELECT type::text FROM procrastinate_events WHERE job_id = %s AND type <> 'scheduled' ORDER BY id",
        (job_id,),
    ).fetchall()
    return [row[0] for row in rows]


# --8<-- [start:exactly_once]
@pytest.mark.pattern("ML07")
def test_two_workers_run_each_job_exactly_once(
    jobs_app: App, jobs_db: Db, jobs_url: str, log_dir: Path
) -> None:
    n = 60
    with worker(jobs_url, log_dir, "w1", concurrency=2), worker(jobs_url, log_dir, "w2", concurrency=2):
        wait_for(lambda: workers_up(jobs_db) == 2, 60, "both workers to be up")
        for i in range(n):
            jobs_app.configure_task("test:record_run").defer(n=i, seconds=0.05)
        wait_for(lambda: statuses(jobs_db, "test:record_run") == {"succeeded": n}, 60, f"{n} jobs to succeed")

    runs = jobs_db.execute(
        "SELECT n, count(*), count(DISTINCT job_id) FROM test_job_runs GROUP BY n"
    ).fetchall()
    assert sorted(runs) == [(i, 1, 1) for i in range(n)]  # every job ran, and ran once
    pids = {pid for (pid,) in jobs_db.execute("SELECT DISTINCT pid FROM test_job_runs")}
    assert len(pids) == 2, log_of(log_dir, "w1") + log_of(log_dir, "w2")  # both workers took jobs


# --8<-- [end:exactly_once]


# --8<-- [start:retries]
@pytest.mark.pattern("ML07")
def test_a_failing_job_is_retried_with_backoff_then_fails(
    jobs_app: App, jobs_db: Db, jobs_url: str, log_dir: Path
) -> None:
    with worker(jobs_url, log_dir, "w1"):
        job_id = jobs_app.configure_task("test:always_fails").defer()
        wait_for(lambda: status_of(jobs_db, job_id) == "failed", 30, "the job to fail for good")

    runs = jobs_db.execute(
        "SELECT attempt, extract(epoch FROM at)::float FROM test_job_runs WHERE job_id = %s ORDER BY at",
        (job_id,),
    ).fetchall()
    assert [attempt for attempt, _ in runs] == [0, 1, 2]  # the first run and max_attempts=2 retries
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(runs)]
    assert gaps[0] >= 2 - 0.05, gaps  # exponential: 2 s, then 4 s
    assert gaps[1] >= 4 - 0.05, gaps
    assert events_of(jobs_db, job_id) == [
        "deferred",
        *["started", "deferred_for_retry"] * 2,
        "started",
        "failed",
    ]
    assert "this task always fails" in log_of(log_dir, "w1")


# --8<-- [end:retries]


# --8<-- [start:killed_worker]
@pytest.mark.pattern("ML07")
def test_a_job_of_a_killed_worker_is_recovered(
    jobs_app: App, jobs_db: Db, jobs_url: str, log_dir: Path
) -> None:
    job_id = jobs_app.configure_task("test:slow_first_time").defer(seconds=600)
    with worker(jobs_url, log_dir, "doomed") as doomed:
        wait_for(lambda: started(jobs_db, job_id) == 1, 30, "the job to start")
        os.kill(doomed.pid, signal.SIGKILL)  # no goodbye: no finally, no status update
        doomed.wait()
    assert status_of(jobs_db, job_id) == "doing"  # as it was left: in progress, lock held

    # Nothing is lost: once the dead worker's heartbeat is old enough, the job goes back.
    assert recover(jobs_url, seconds_since_heartbeat=60) == []  # too early to tell
    wait_for(lambda: recover(jobs_url, seconds_since_heartbeat=2) == [job_id], 30, "recovery")
    assert status_of(jobs_db, job_id) == "todo"

    with worker(jobs_url, log_dir, "next"):
        wait_for(lambda: status_of(jobs_db, job_id) == "succeeded", 30, "another worker to finish it")
    assert started(jobs_db, job_id) == 2
    assert events_of(jobs_db, job_id) == ["deferred", "started", "deferred_for_retry", "started", "succeeded"]


# --8<-- [end:killed_worker]


def workers_up(db: Db) -> int:
    row = db.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
    return int(row[0]) if row else 0


def started(db: Db, job_id: int) -> int:
    row = db.execute("SELECT count(*) FROM test_job_runs WHERE job_id = %s", (job_id,)).fetchone()
    return int(row[0]) if row else 0


def recover(jobs_url: str, seconds_since_heartbeat: float) -> list[int]:
    """What the periodic recover_stalled_jobs task does, run here and now."""

    async def run() -> list[int]:
        app = queue.with_connector(PsycopgConnector(conninfo=conninfo(jobs_url)))
        async with app.open_async():
            return await recover_stalled_jobs(app, seconds_since_heartbeat)

    return asyncio.run(run())
