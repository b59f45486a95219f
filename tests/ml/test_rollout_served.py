"""LC02 as deployed: `tasks.py serve --workers 2` under steady load while `tasks.py model-alias`
moves the alias it serves; no request fails, and both workers switch within a bounded time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devtools.postgres_provider import free_port
from example_app.core.config import APP_DIR, Settings
from example_app.core.security import create_access_token
from tests.deployment.test_connection_budget import Log, serve, stop
from tests.ml.artifacts import copy_of_digits
from tests.support import ROOT

SWITCH_BOUND_SECONDS = 5.0  # NOTIFY: well under MODEL_POLL_SECONDS (15 s by default)
CLIENTS = 4


def task(database_url: str, *args: str) -> str:
    """`python3 tasks.py <args>` on the suite's database; its last line (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "tasks.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "POSTGRES_PROVIDER": "url"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


async def execute(database_url: str, statement: str, **params: Any) -> Any:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return result.scalar() if result.returns_rows else None
    finally:
        await engine.dispose()


# --8<-- [start:served_switch]
@pytest.mark.system("python3 tasks.py serve --workers 2 as a process, under load")
@pytest.mark.pattern("LC02")
def test_an_alias_switch_under_load_loses_no_request_in_either_worker(
    database_url: str, settings: Settings, tmp_path: Path, password_hash: str, digit: dict[str, Any]
) -> None:
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    assert task(database_url, "model-register", "--path", str(tmp_path / "digits-1.0.1")).startswith(
        "digits 1.0.1 registered"
    )
    task(database_url, "model-alias", "--name", "digits", "--alias", "rollout", "--version", "1.0.0")
    user_id = asyncio.run(
        execute(
            database_url,
            "INSERT INTO users (email, name, hashed_password) "
            "VALUES ('load@example.com', 'L', :h) RETURNING id",
            h=password_hash,
        )
    )
    last = asyncio.run(execute(database_url, "SELECT coalesce(max(id), 0) FROM predictions"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/predictions"
    server = serve(
        database_url,
        port,
        "--workers",
        "2",
        MODEL_ALIAS="rollout",
        MODEL_ROOTS=json.dumps([str(APP_DIR / "ml" / "artifacts"), str(tmp_path)]),
        PREDICTION_MAX_IN_PROGRESS="8",  # the load is steady, not an overload: none is shed
    )
    log = Log(server)
    answers: list[tuple[float, int, str]] = []  # (time, status, version)
    stopping = threading.Event()

    def load() -> None:
        headers = {"Authorization": f"Bearer {create_access_token(settings, user_id)}"}
        while not stopping.is_set():
            # A new connection each time: the kernel hands each to either worker.
            response = httpx.post(url, json=digit, headers=headers, timeout=30)
            version = (
                response.json().get("model", {}).get("version", "") if response.status_code == 200 else ""
            )
            answers.append((time.monotonic(), response.status_code, version))

    try:
        deadline = time.monotonic() + 240
        while log.count("Application startup complete") < 2:
            assert server.poll() is None, "".join(log.lines)
            assert time.monotonic() < deadline, "".join(log.lines)
            time.sleep(0.5)
        with ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(load) for _ in range(CLIENTS)]
            time.sleep(3)
            switched_at = time.monotonic()
            task(database_url, "model-alias", "--name", "digits", "--alias", "rollout", "--version", "1.0.1")
            committed = time.monotonic()  # the task has committed (its process took seconds to start)
            while log.count("model digits rollout -> 1.0.1 (was 1.0.0)") < 2:  # each worker, once
                assert time.monotonic() - switched_at < SWITCH_BOUND_SECONDS + 10, "".join(log.lines[-20:])
                time.sleep(0.05)
            both_switched = time.monotonic()
            time.sleep(3)
            stopping.set()
            for future in running:
                future.result()
    finally:
        stopping.set()
        stop(server)
        log.reader.join(timeout=30)
        asyncio.run(execute(database_url, "DELETE FROM predictions WHERE id > :last", last=last))
        asyncio.run(execute(database_url, "DELETE FROM model_aliases WHERE alias = 'rollout'"))
        asyncio.run(execute(database_url, "DELETE FROM model_versions WHERE version = '1.0.1'"))
        asyncio.run(execute(database_url, "DELETE FROM users WHERE id = :id", id=user_id))
    statuses = [status for _, status, _ in answers]
    assert len(answers) > 50
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert both_switched - committed < SWITCH_BOUND_SECONDS
    before = {version for at, _, version in answers if at < switched_at}
    after = {version for at, _, version in answers if at > both_switched}
    assert (before, after) == ({"1.0.0"}, {"1.0.1"})


# --8<-- [end:served_switch]
