"""DP01: `tasks.py serve --workers N`, and the connection budget every process checks at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.postgres_provider import free_port
from example_app.core.budget import (
    ConnectionBudget,
    ConnectionBudgetError,
    check_connection_budget,
)
from example_app.core.config import Settings
from tests.support import ROOT


def serve(database_url: str, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    """`python3 tasks.py serve --port <port> <args>` on the suite's server, its log in a pipe."""
    return subprocess.Popen(
        [sys.executable, "tasks.py", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "POSTGRES_PROVIDER": "url", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a reader stops `serve`."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=120)


@pytest.mark.pattern("DP01")
async def test_the_default_deployment_fits(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        budget = await check_connection_budget(connection, Settings())
    # 1 worker x (10 pool + 10 overflow + 1 model listener) + 1 job worker x (8 queue + 20) + 5 reserve
    assert (budget.web, budget.jobs, budget.needed) == (21, 28, 54)


# --8<-- [start:arithmetic]
@pytest.mark.pattern("DP01")
def test_the_refusal_names_the_numbers_and_the_settings() -> None:
    budget = ConnectionBudget(Settings(WEB_CONCURRENCY=4))  # PostgreSQL's defaults: 100, 3 reserved
    with pytest.raises(ConnectionBudgetError) as refused:
        budget.check(max_connections=100, reserved=3)
    assert str(refused.value) == (
        "connection budget exceeded: 1 instance(s) x 4 worker(s) x (10 pool + 10 overflow + 1 listener) "
        "= 84, + 1 job worker(s) x (8 queue + 20) = 28, + 5 reserve = 117 > 97 (max_connections 100 - 3 "
        "reserved for superusers); lower WEB_CONCURRENCY, DB_POOL_SIZE, DB_MAX_OVERFLOW or "
        "JOB_WORKERS, or raise max_connections on the server"
    )
    ConnectionBudget(Settings(WEB_CONCURRENCY=3)).check(max_connections=100, reserved=3)  # 96 fits


# --8<-- [end:arithmetic]


# --8<-- [start:served]
class Log:
    """A process's stderr, read line by line in a thread, for a test to wait on."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self.reader = threading.Thread(target=self.lines.extend, args=(process.stderr,), daemon=True)
        self.reader.start()

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))


@pytest.mark.system("python3 tasks.py serve --workers 2 as a process")
@pytest.mark.pattern("DP01")
def test_serve_with_two_workers_runs_two_processes(database_url: str) -> None:
    port = free_port()
    server = serve(database_url, port, "--workers", "2")
    log = Log(server)
    try:
        deadline = time.monotonic() + 240
        while log.count("Application startup complete") < 2:  # each after its budget check
            assert server.poll() is None, "".join(log.lines)
            assert time.monotonic() < deadline, "".join(log.lines)
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
        assert log.count("Started server process") == 2  # two uvicorn worker processes
    finally:
        stop(server)
        log.reader.join(timeout=30)
    assert log.count("connection budget") == 0


@pytest.mark.system("python3 tasks.py serve as a process")
@pytest.mark.pattern("DP01")
def test_serve_over_budget_stops_with_one_line(database_url: str) -> None:
    # 2 workers x (40 + 10 + 1 listener) = 102 alone: more than any default server accepts
    server = serve(database_url, free_port(), "--workers", "2", DB_POOL_SIZE="40")
    log = Log(server)
    try:
        server.wait(timeout=300)  # it stops by itself
    finally:
        stop(server)
        log.reader.join(timeout=30)
    text = "".join(log.lines)
    # Each worker that got that far said the same one line (after its own time and level).
    refusals = {
        line[line.index("connection budget") :] for line in log.lines if "connection budget exceeded" in line
    }
    assert len(refusals) == 1, text
    [line] = refusals
    assert "2 worker(s) x (40 pool + 10 overflow + 1 listener) = 102" in line
    assert "lower WEB_CONCURRENCY, DB_POOL_SIZE" in line
    assert "Traceback" not in text


# --8<-- [end:served]
