"""ML07: who starts a job worker again. Its own loop: each end of a run but a stop request is
followed by another run, after a wait that grows (core/backoff.py); the full tier proves it on a
real outage (test_outage.py), here a stand-in for procrastinate's run ends each way a run can.
And `tasks.py serve`, which starts a worker process again whenever it exits (`Supervised`); the
full tier kills one under a real `serve` (test_serve.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from procrastinate.exceptions import ConnectorException
from psycopg import OperationalError

from example_app.core.backoff import Backoff
from example_app.jobs.worker import keep_taking_jobs
from tasks import Supervised


# --8<-- [start:backoff_test]
def test_waits_double_up_to_the_cap_and_start_over_after_a_healthy_run() -> None:
    backoff = Backoff(first=1, cap=30, healthy=60)
    assert [backoff.after(ran_for=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after(ran_for=600) == 1  # it ran well for ten minutes: a new outage
    assert backoff.after(ran_for=0) == 2


# --8<-- [end:backoff_test]


# --8<-- [start:loop_test]
@pytest.mark.pattern("ML07")
async def test_the_worker_takes_jobs_again_after_each_end_until_sigterm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    cancelled = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def take_jobs() -> None:
        runs.append(loop.time())
        if len(runs) == 1:
            return  # procrastinate stopped the worker: a side task failed
        if len(runs) == 2:  # the database refused the next start
            raise ConnectorException() from OperationalError("connection refused")
        os.kill(os.getpid(), signal.SIGTERM)  # the third run is told to stop, as a deployment does
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()  # procrastinate's graceful stop starts here
            raise

    await asyncio.wait_for(keep_taking_jobs(take_jobs, Backoff(first=0.2, cap=0.3)), timeout=10)

    assert len(runs) == 3
    assert cancelled.is_set()  # the run that was told to stop was stopped, not left behind
    assert runs[1] - runs[0] >= 0.2  # the waits, growing
    assert runs[2] - runs[1] >= 0.3
    restarts = [r.getMessage() for r in caplog.records if r.name == "example_app.jobs.worker"]
    assert restarts == [
        "job worker stopped (a side task failed, see above); taking jobs again in 0.2 s",
        "job worker stopped (OperationalError: connection refused); taking jobs again in 0.3 s",
    ]


# --8<-- [end:loop_test]


# --8<-- [start:supervised_test]
@pytest.mark.pattern("ML07")
def test_serve_starts_an_exited_worker_again_and_reaps_each(capsys: pytest.CaptureFixture[str]) -> None:
    exits_at_once = [sys.executable, "-c", "raise SystemExit(3)"]
    supervised = Supervised(exits_at_once, "job worker", Backoff(first=0.2, cap=0.4))
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < 4 and time.monotonic() < deadline:  # three restarts
        supervised.check()
        pids.add(supervised.process.pid)
        time.sleep(0.02)
    down = supervised.restart_at is not None  # the last one exited, the next not started yet
    supervised.stop()

    lines = capsys.readouterr().err.splitlines()
    assert lines[:3] == [
        "job worker exited (exit code 3); starting another in 0.2 s",
        "job worker exited (exit code 3); starting another in 0.4 s",
        "job worker exited (exit code 3); starting another in 0.4 s",
    ]
    assert len(pids) == len(lines) + (not down)  # a line for each exit, a new process for each line
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]  # every one reaped: no <defunct>


@pytest.mark.pattern("ML07")
def test_serve_stops_its_worker_once_and_starts_no_other() -> None:
    supervised = Supervised([sys.executable, "-c", "import time; time.sleep(60)"], "job worker")
    first = supervised.process
    supervised.stop(timeout=10)
    assert first.returncode == -signal.SIGTERM
    supervised.check()
    assert supervised.process is first  # stopped on purpose: not started again


# --8<-- [end:supervised_test]
