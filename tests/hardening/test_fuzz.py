"""HD05: the OpenAPI contract is true, as schemathesis finds it over HTTP on real PostgreSQL.

A short run is part of every `python3 tasks.py test`: at least 1,000 generated cases over every
operation, with a fixed seed, in a few tens of seconds. `python3 tasks.py fuzz` runs the same
harness for longer (FUZZ_CASES cases per operation) and can record its summary for the guide.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from bench.harness import Record, describe
from tests.hardening.fuzz import FuzzReport, run
from tests.jobs.workers import conninfo
from tests.support import PASSWORD, ROOT, scratch_database, served_app

pytestmark = pytest.mark.system("schemathesis against a served app and a job worker")

# 19 operations take parameters or a body; the other 4 have one case each: 19 x 60 + 4 = 1,144.
CASES_PER_OPERATION = int(os.environ.get("FUZZ_CASES", "60"))
RECORDING = bool(os.environ.get("FUZZ_RECORD"))
RECORD = Record("fuzz", f"python3 tasks.py fuzz --cases {CASES_PER_OPERATION} --record")  # its header: now


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    postgres: str  # its version, for the record


@pytest.fixture(scope="module")
def fuzz_url(database_url: str) -> Iterator[str]:
    """A database of the fuzz's own, migrated: it commits what it writes."""
    with scratch_database(database_url, "fuzz", migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def target(fuzz_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The app as `python3 tasks.py serve` runs it: uvicorn and a job worker, with one
    signed-in user."""
    url = fuzz_url
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        # Ids the fuzz will pick (1, 2, small numbers) are other users' than our caller's, who
        # would otherwise delete itself early and spend the rest of the run on 401s.
        conn.execute("ALTER SEQUENCE users_id_seq RESTART WITH 1000003")
    logs = tmp_path_factory.mktemp("fuzz")
    worker_log = (logs / "worker.log").open("wb")
    worker = subprocess.Popen(  # the stream of a job's events ends when the job does
        [sys.executable, "-m", "example_app.jobs.worker"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "JOB_POLL_SECONDS": "0.2"},
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        with served_app(url, log=logs / "uvicorn.log") as app:
            signup = {"email": "fuzz@example.com", "password": PASSWORD, "name": "Fuzz"}
            assert httpx.post(f"{app.url}/api/v1/users", json=signup).status_code == 201
            form = {"username": signup["email"], "password": PASSWORD}
            token = httpx.post(f"{app.url}/api/v1/auth/token", data=form).json()["access_token"]
            yield Target(app.url, {"Authorization": f"Bearer {token}"}, describe(url))
            assert "Traceback" not in (logs / "uvicorn.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        worker_log.close()


def keep(report: FuzzReport, postgres: str) -> None:
    """Print the summary; with FUZZ_RECORD (`tasks.py fuzz --record`), write it to bench/results/."""
    statuses = {str(code): n for code, n in sorted(report.statuses.items())}
    data = {"cases": report.cases, "seconds": report.seconds, "findings": len(report.findings)}
    RECORD.write(report.summary(), {**data, "statuses": statuses}, postgres=postgres, record=RECORDING)


# --8<-- [start:fuzz_test]
@pytest.mark.pattern("HD05")
def test_schemathesis_finds_no_server_error_and_no_contract_violation(target: Target) -> None:
    report = run(target.url, target.headers, cases_per_operation=CASES_PER_OPERATION)
    keep(report, target.postgres)
    assert len(report.per_operation) >= 23  # every operation of the app
    assert report.cases >= 1_000
    assert report.findings == []
    assert not [code for code in report.statuses if code >= 500 and code != 503]


# --8<-- [end:fuzz_test]
