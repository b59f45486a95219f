"""DP04: a job worker told to stop (SIGTERM, as a deployment stops it) finishes its running job."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import App

from tests.jobs.test_workers import status_of, workers_up
from tests.jobs.workers import log_of, wait_for, worker

pytestmark = pytest.mark.system("a worker process stopped by a signal")

Db = psycopg.Connection[Any]


# --8<-- [start:job_finishes]
@pytest.mark.pattern("DP04")
def test_sigterm_lets_the_running_job_finish(
    jobs_app: App, jobs_db: Db, jobs_url: str, log_dir: Path
) -> None:
    with worker(jobs_url, log_dir, "w1") as process:
        wait_for(lambda: workers_up(jobs_db) == 1, 60, "the worker to be up")
        job_id = jobs_app.configure_task("test:record_run").defer(n=7, seconds=3)
        wait_for(lambda: status_of(jobs_db, job_id) == "doing", 30, "the job to start")
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)  # mid-job: 3 s of work left
        assert process.wait(timeout=30) == 0, log_of(log_dir, "w1")
        took = time.monotonic() - stopped_at

    assert status_of(jobs_db, job_id) == "succeeded"  # not failed, not left "doing" for recovery
    runs = jobs_db.execute("SELECT count(*) FROM test_job_runs WHERE job_id = %s", (job_id,)).fetchone()
    assert runs == (1,)
    assert 1.5 < took < 15  # it waited for the job (JOB_SHUTDOWN_SECONDS bounds the wait)
    assert workers_up(jobs_db) == 0  # it said goodbye: no stalled-worker recovery needed


# --8<-- [end:job_finishes]
