"""GET /api/v1/health: 200 on a live database, 503 (quickly) when it is not reachable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from devtools.postgres_provider import free_port
from example_app.api.dependencies import get_db
from example_app.core.config import API_V1_PREFIX
from tests.support import http_client

HEALTH = f"{API_V1_PREFIX}/health"


@pytest.mark.pattern("S03", "W01", "W07")
async def test_health_ok_on_live_database(client: AsyncClient) -> None:
    response = await client.get(HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "detail": None}


async def _health_with_database_at(app: FastAPI, url: str) -> tuple[int, dict[str, object], float]:
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, class_=AsyncSession)

    async def unreachable_db() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    app.dependency_overrides[get_db] = unreachable_db
    try:
        async with http_client(app) as c:
            started = time.perf_counter()
            response = await c.get(HEALTH)
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
@pytest.mark.pattern("S03")
async def test_health_503_when_the_server_is_stopped(app: FastAPI) -> None:
    """A real server that was up and is then stopped: 503, not a traceback or a hang."""
    from devtools.postgres_provider import find_pg_ctl, local_server

    origin, pg_ctl = find_pg_ctl()
    with local_server(origin, pg_ctl, data_home=None, dbname="doomed") as server:
        status, _, _ = await _health_with_database_at(app, server.url)
        assert status == 200
    status, body, elapsed = await _health_with_database_at(app, server.url)
    assert status == 503
    assert body["database"] == "unreachable"
    assert elapsed < app.state.settings.HEALTH_CHECK_TIMEOUT + 1.5


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
