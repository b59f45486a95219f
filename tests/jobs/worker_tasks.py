"""Tasks that only the tests' workers know: they record each run in `test_job_runs`.

`tests/jobs/run_worker.py` adds them to the app's queue under the namespace "test", so a test
worker runs them beside the app's own tasks, with the app's own worker code.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from procrastinate import Blueprint, JobContext, RetryStrategy
from sqlalchemy import text

from example_app.jobs.tasks import WorkerResources

blueprint = Blueprint()


async def record(context: JobContext, n: int) -> None:
    assert context.job.id is not None
    async with WorkerResources.of(context).engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO test_job_runs (job_id, n, attempt, pid) VALUES (:job, :n, :attempt, :pid)"),
            {"job": context.job.id, "n": n, "attempt": context.job.attempts, "pid": os.getpid()},
        )


@blueprint.task(name="record_run", pass_context=True)
async def record_run(context: JobContext, n: int, seconds: float = 0.0) -> None:
    await asyncio.sleep(seconds)
    await record(context, n)


# Waits: 2 ** (attempts + 1) seconds, i.e. 2 s then 4 s; the third run fails for good.
@blueprint.task(
    name="always_fails", pass_context=True, retry=RetryStrategy(max_attempts=2, exponential_wait=2)
)
async def always_fails(context: JobContext) -> None:
    await record(context, 0)
    raise RuntimeError("this task always fails")


@blueprint.task(name="slow_first_time", pass_context=True)
async def slow_first_time(context: JobContext, seconds: float) -> None:
    await record(context, 0)  # "started": the test kills the worker after this
    if context.job.attempts == 0:  # a job put back after its worker died has attempts >= 1
        await asyncio.sleep(seconds)


@blueprint.task(name="run_until_gate", pass_context=True)
async def run_until_gate(context: JobContext, n: int, gate: str) -> None:
    """Runs until the file `gate` exists (the test decides when), then records its run."""
    # A file, not an event: the test is another process, and the database may be down meanwhile.
    while not await asyncio.to_thread(Path(gate).exists):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await record(context, n)
