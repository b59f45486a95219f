"""DP02: the app through PgBouncer in transaction pooling mode (Debian's pgbouncer 1.18)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from devtools.pgbouncer import pgbouncer
from example_app.core.pooler import behind_pooler
from example_app.jobs.queue import conninfo
from tests.hardening.fuzz import run
from tests.support import PASSWORD, ROOT, NewDatabase, alembic_config, served_app

pytestmark = pytest.mark.system("a PgBouncer process in front of the server")

SERVER_CONNECTIONS = 20
CLIENTS = 500
CONCURRENT_READS = 200


@pytest.fixture
def direct_and_pooled(new_database: NewDatabase) -> Iterator[tuple[str, str]]:
    """A migrated scratch database: its direct URL, and the URL through PgBouncer."""
    url = new_database()
    command.upgrade(alembic_config(url), "head")  # migrations go direct: they hold a session lock
    with pgbouncer(url, pool_size=SERVER_CONNECTIONS) as pooled:
        yield url, pooled


def server_connections(pooled: str) -> int:
    """The server connections PgBouncer holds to the database, from its console (SHOW SERVERS).

    Its own count, rather than pg_stat_activity's: there a backend that has just ended can stay
    listed while it exits (CI's first run counted 21 of 20 once).
    """
    url = make_url(pooled)
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password or "",
        dbname="pgbouncer",  # the console: simple queries only, hence ClientCursor
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
    ) as conn:
        cursor = conn.execute("SHOW SERVERS")
        columns = [c.name for c in cursor.description or ()]
        rows = cursor.fetchall()
    return sum(1 for row in rows if row[columns.index("database")] == url.database)


async def client_work(engine: Any, n: int) -> None:
    """One client: a read, then a write in a transaction, each its own transaction."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT count(*) FROM posts WHERE id > :n"), {"n": n})
        await conn.rollback()
        async with conn.begin():
            await conn.execute(text("SELECT pg_sleep(0.01)"))  # a transaction that takes a moment
            await conn.execute(text("SELECT id FROM users WHERE id = :n FOR UPDATE"), {"n": n})


@pytest.mark.pattern("DP02")
async def test_without_the_settings_asyncpg_fails_behind_pgbouncer(
    direct_and_pooled: tuple[str, str],
) -> None:
    _, pooled = direct_and_pooled
    engine = create_async_engine(pooled, pool_size=30, max_overflow=0)  # asyncpg's defaults
    try:
        results = await asyncio.gather(*(client_work(engine, n) for n in range(60)), return_exceptions=True)
    finally:
        await engine.dispose()
    errors = [r for r in results if isinstance(r, DBAPIError)]
    assert errors, "asyncpg's prepared statements were expected to fail in transaction mode"
    assert "prepared statement" in str(errors[0])


# --8<-- [start:five_hundred]
@pytest.mark.pattern("DP02")
async def test_500_clients_through_20_server_connections(direct_and_pooled: tuple[str, str]) -> None:
    _, pooled = direct_and_pooled
    engine = create_async_engine(pooled, pool_size=CLIENTS, max_overflow=0, pool_timeout=60)
    behind_pooler(engine)  # what DB_BEHIND_POOLER=true does to the app's engine
    peak = 0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, await asyncio.to_thread(server_connections, pooled))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(client_work(engine, n) for n in range(CLIENTS)), return_exceptions=True
        )
        clients = engine.pool.checkedin()  # type: ignore[attr-defined]
    finally:
        stop.set()
        await watcher
        await engine.dispose()
    took = time.monotonic() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert clients == CLIENTS  # 500 client connections were open at once...
    assert 0 < peak <= SERVER_CONNECTIONS  # ...on at most 20 server connections
    print(f"{CLIENTS} clients, 0 errors, at most {peak} server connections, {took:.1f} s")


# --8<-- [end:five_hundred]


@pytest.mark.pattern("DP02")
def test_the_served_app_works_through_pgbouncer(direct_and_pooled: tuple[str, str]) -> None:
    _, pooled = direct_and_pooled
    with (
        served_app(pooled, DB_BEHIND_POOLER="true") as app,
        httpx.Client(base_url=f"{app.url}/api/v1", timeout=30) as http,
    ):
        body = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
        assert http.post("/users", json=body).status_code == 201
        form = {"username": "ada@example.com", "password": "correct horse"}
        token = http.post("/auth/token", data=form).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):  # the same statements again: a kept prepared statement would fail now
            post = http.post("/posts", json={"title": "Hi", "body": "Text."}, headers=auth)
            assert post.status_code == 201, post.text
            assert http.get("/posts").status_code == 200
            assert http.get(f"/posts/{post.json()['id']}").status_code == 200
            assert http.get("/users").status_code in (200, 401, 403)
        assert http.get("/health/ready").status_code == 200
        # Reads at once, more than PgBouncer's server connections: a read outside a transaction
        # could have its prepare and its execute on two of them (found by the scale-out bench).
        statuses = asyncio.run(reads_at_once(app.url, post.json()["id"], CONCURRENT_READS))
        assert statuses == [200] * CONCURRENT_READS


async def reads_at_once(url: str, post_id: int, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=30) as client:
        answers = await asyncio.gather(*(client.get(f"/posts/{post_id}") for _ in range(n)))
    return [a.status_code for a in answers]


# --8<-- [start:every_route]
FUZZ_CASES = 10  # per operation: every route of the app, each several times, through PgBouncer


@pytest.mark.pattern("DP02")
def test_every_route_works_through_pgbouncer(
    direct_and_pooled: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """schemathesis sends generated requests to every operation of the app served through
    PgBouncer (as test_fuzz.py does directly): none may fail with a server error."""
    direct, pooled = direct_and_pooled
    with psycopg.connect(conninfo(direct), autocommit=True) as conn:
        conn.execute("ALTER SEQUENCE users_id_seq RESTART WITH 1000003")  # the fuzz never deletes us
    logs = tmp_path_factory.mktemp("pgbouncer-fuzz")
    # The job worker connects directly: it LISTENs, which needs a session of its own.
    with (
        (logs / "worker.log").open("wb") as worker_log,
        subprocess.Popen(
            [sys.executable, "-m", "example_app.jobs.worker"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": direct, "JOB_POLL_SECONDS": "0.2"},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        ) as worker,
    ):
        try:
            with served_app(pooled, log=logs / "uvicorn.log", DB_BEHIND_POOLER="true") as app:
                signup = {"email": "fuzz@example.com", "password": PASSWORD, "name": "Fuzz"}
                assert httpx.post(f"{app.url}/api/v1/users", json=signup).status_code == 201
                form = {"username": signup["email"], "password": PASSWORD}
                token = httpx.post(f"{app.url}/api/v1/auth/token", data=form).json()["access_token"]
                report = run(app.url, {"Authorization": f"Bearer {token}"}, cases_per_operation=FUZZ_CASES)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    print(f"through PgBouncer: {report.summary()}")
    assert len(report.per_operation) >= 22  # every operation of the app
    assert report.findings == []
    assert not [code for code in report.statuses if code >= 500]
    assert "Traceback" not in (logs / "uvicorn.log").read_text()


# --8<-- [end:every_route]
