"""The probes. GET /api/v1/health: 200 on a live database, 503 (quickly) when it is not
reachable. Liveness answers whatever the database does; readiness (OB01) is 503 without the
database, without a model the app serves, or on a schema behind this code's head."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from devtools.postgres_provider import free_port
from example_app.api.dependencies import get_db
from example_app.core.config import API_V1_PREFIX
from example_app.core.schema_version import SchemaHead
from example_app.ml.embedding import MODEL_NAME as EMBEDDING_MODEL
from tests.support import AppFactory, ClientFactory, alembic_config, http_client, queue_as

HEALTH = f"{API_V1_PREFIX}/health"
LIVE, READY = f"{HEALTH}/live", f"{HEALTH}/ready"


@pytest.mark.pattern("S03", "W01", "W07")
async def test_health_ok_on_live_database(client: AsyncClient) -> None:
    response = await client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "detail": None}


async def _health_with_database_at(
    app: FastAPI, url: str, probe: str = HEALTH
) -> tuple[int, dict[str, object], float]:
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, class_=AsyncSession)

    async def unreachable_db() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    app.dependency_overrides[get_db] = unreachable_db
    try:
        async with http_client(app) as c:
            started = time.perf_counter()
            response = await c.get(probe)
            elapsed = time.perf_counter() - started
    finally:
        app.dependency_overrides.clear()
        await engine.dispose()
    return response.status_code, response.json(), elapsed


@pytest.mark.pattern("S03")
async def test_health_503_when_nothing_listens(app: FastAPI) -> None:
    status, body, _ = await _health_with_database_at(
        app, f"postgresql+asyncpg://nobody:x@127.0.0.1:{free_port()}/nothing"
    )
    assert status == 503
    assert body["status"] == "error"
    assert body["database"] == "unreachable"
    assert "cannot query the database" in str(body["detail"])


@pytest.mark.pattern("S03")
async def test_health_503_is_bounded_when_the_database_hangs(app: FastAPI) -> None:
    # A server that accepts TCP connections and never answers: the classic hang.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        status, body, elapsed = await _health_with_database_at(
            app, f"postgresql+asyncpg://nobody:x@127.0.0.1:{port}/nothing"
        )
    finally:
        server.close()
    assert status == 503
    timeout = app.state.settings.HEALTH_CHECK_TIMEOUT
    assert body["detail"] == f"no answer within {timeout:g} s"
    assert elapsed < timeout + 1.5


@pytest.mark.system("a server of its own, started and stopped")
@pytest.mark.pattern("S03", "OB01")
async def test_health_503_when_the_server_is_stopped(app: FastAPI) -> None:
    """A real server that was up and is then stopped: 503, not a traceback or a hang; the
    liveness probe still says 200, so nothing restarts a process that is fine."""
    from devtools.postgres_provider import find_pg_ctl, local_server

    origin, pg_ctl = find_pg_ctl()
    with local_server(origin, pg_ctl, data_home=None, dbname="doomed") as server:
        status, _, _ = await _health_with_database_at(app, server.url)
        assert status == 200
    status, body, elapsed = await _health_with_database_at(app, server.url)
    assert status == 503
    assert body["database"] == "unreachable"
    assert elapsed < app.state.settings.HEALTH_CHECK_TIMEOUT + 1.5
    ready, body, _ = await _health_with_database_at(app, server.url, READY)
    assert (ready, body["database"]) == (503, "unreachable")
    assert (await _health_with_database_at(app, server.url, LIVE))[0] == 200


# --8<-- [start:probe_tests]
@pytest.mark.pattern("OB01")
async def test_without_the_database_readiness_fails_and_liveness_does_not(app: FastAPI) -> None:
    nowhere = f"postgresql+asyncpg://nobody:x@127.0.0.1:{free_port()}/nothing"  # nothing listens
    ready, body, _ = await _health_with_database_at(app, nowhere, READY)
    live, _, _ = await _health_with_database_at(app, nowhere, LIVE)
    assert (ready, live) == (503, 200)  # out of the load balancer's pool, and not restarted
    assert body["status"] == "error"
    assert "cannot query the database" in str(body["errors"])


@pytest.mark.pattern("OB01")
async def test_without_the_embedder_readiness_fails(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app()
    client = await make_client(app)
    assert EMBEDDING_MODEL in (await client.get(READY)).json()["models"]
    monkeypatch.setattr(app.state.resources, "embedder", None)  # as when it fails to load
    ready = await client.get(READY)
    assert ready.status_code == 503
    assert "embedding model is not loaded" in ready.json()["errors"]["embedder"]
    assert (await client.get(LIVE)).status_code == 200


@pytest.mark.pattern("OB01")
async def test_a_schema_behind_head_fails_readiness(client: AsyncClient, db_session: AsyncSession) -> None:
    head = SchemaHead.read()
    (current,) = head.heads
    before = ScriptDirectory.from_config(alembic_config("")).get_revision(current).down_revision
    assert (await client.get(READY)).json()["schema_revision"] == current
    # In the test's transaction, rolled back after it: the database as one migration ago.
    await db_session.exec(text("UPDATE alembic_version SET version_num = :v").bindparams(v=before))  # type: ignore[call-overload]
    ready = await client.get(READY)
    assert ready.status_code == 503
    assert ready.json()["errors"]["schema"] == f"behind: at {before}, this code needs {current}"
    await db_session.exec(text("DELETE FROM alembic_version"))  # type: ignore[call-overload]
    assert "not migrated" in (await client.get(READY)).json()["errors"]["schema"]
    assert (await client.get(LIVE)).status_code == 200


@pytest.mark.pattern("OB01")
async def test_a_schema_a_newer_release_migrated_keeps_readiness(
    client: AsyncClient, db_session: AsyncSession
) -> None:
    # A rollout: the new release's instance migrated first; the old ones keep serving meanwhile.
    await db_session.exec(text("UPDATE alembic_version SET version_num = 'f00dfacef00d'"))  # type: ignore[call-overload]
    assert (await client.get(READY)).status_code == 200


# --8<-- [end:probe_tests]


# --8<-- [start:jobs_tests]
@pytest.mark.pattern("OB01", "ML07")
async def test_readiness_reports_a_queue_without_a_live_worker_and_stays_200(
    client: AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    stalled = app.state.settings.JOB_STALLED_SECONDS
    await queue_as(db_session, waiting=[90, 20], later=1, heartbeats=[stalled + 15])  # the worker died
    ready = await client.get(READY)
    assert ready.status_code == 200  # the API serves; its jobs wait
    assert ready.json()["errors"] == {}
    assert ready.json()["jobs"] == {
        "status": "no_worker",
        "workers_alive": 0,
        "heartbeat_age_seconds": stalled + 15,
        "oldest_todo_age_seconds": 90,  # the job scheduled an hour ahead does not wait yet
        "detail": f"the last worker heartbeat is {stalled + 15:.0f} s old"
        f" (JOB_STALLED_SECONDS is {stalled:g}): jobs wait until a worker runs",
    }
    await queue_as(db_session)  # no worker has ever registered, nothing waits
    jobs = (await client.get(READY)).json()["jobs"]
    assert (jobs["status"], jobs["heartbeat_age_seconds"], jobs["oldest_todo_age_seconds"]) == (
        "no_worker",
        None,
        None,
    )
    assert jobs["detail"].startswith("no worker has registered")


@pytest.mark.pattern("OB01", "ML07")
async def test_readiness_reports_a_live_worker(client: AsyncClient, db_session: AsyncSession) -> None:
    await queue_as(db_session, waiting=[4], running=1, heartbeats=[2.5, 600])  # one alive, one long dead
    jobs = (await client.get(READY)).json()["jobs"]
    assert jobs == {
        "status": "ok",
        "workers_alive": 1,
        "heartbeat_age_seconds": 2.5,  # the freshest
        "oldest_todo_age_seconds": 4,
        "detail": None,
    }


# --8<-- [end:jobs_tests]


@pytest.mark.pattern("DB01")
async def test_pool_pre_ping_recovers_after_backends_are_terminated(database_url: str) -> None:
    """Connections killed server-side (a restart, a failover) are replaced, not handed out."""
    engine = create_async_engine(database_url, pool_pre_ping=True, pool_size=1, max_overflow=1)
    try:
        async with engine.connect() as conn:
            victim = await conn.scalar(text("SELECT pg_backend_pid()"))
        # The pool now holds the victim's connection; kill its backend from outside the pool.
        outside = create_async_engine(database_url, poolclass=NullPool)
        async with outside.connect() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        await outside.dispose()
        async with engine.connect() as conn:  # pre-ping finds it dead and reconnects
            assert await conn.scalar(text("SELECT pg_backend_pid()")) != victim
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
