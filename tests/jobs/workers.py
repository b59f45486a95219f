"""Start and stop real worker processes for the tests, on a database of the test's choosing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support import ROOT

RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS test_job_runs (
    job_id bigint NOT NULL,
    n integer NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


def conninfo(database_url: str) -> str:
    """The libpq URL of a database (as example_app.jobs.queue.conninfo, without importing the app)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# Fast clocks for the tests: poll often, heartbeat every half second, dead after 2 s of silence.
TEST_WORKER_ENV = {
    "JOB_POLL_SECONDS": "0.2",
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "JOB_STALLED_SECONDS": "2",
    "JOB_SHUTDOWN_SECONDS": "10",
}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def worker(
    database_url: str, log_dir: Path, name: str, concurrency: int = 1, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process (`python -m tests.jobs.run_worker`); SIGTERM, then SIGKILL, at the end."""
    env = {**os.environ, **TEST_WORKER_ENV, **settings, "DATABASE_URL": database_url}
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.jobs.run_worker", "--name", name, "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def log_of(log_dir: Path, name: str) -> str:
    return (log_dir / f"{name}.log").read_text(errors="replace")
