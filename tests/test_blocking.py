"""Decision 6 corrected: a sync Session under `async def` stalls every other request (E03, D11).

Both variants get the same load: four requests that each wait 0.4 s in PostgreSQL, and one cheap
request sent alongside. We time the cheap one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from example_app.api.dependencies import SessionDep
from tests.guide_originals import original_app
from tests.support import AppFactory

SLOW_REQUESTS = 4
SLEEP = 0.4


async def cheap_latency_under_load(client: AsyncClient) -> float:
    async def timed_ping() -> float:
        # The ping is due 50 ms after the slow requests; a blocked loop delays it past that.
        due = time.perf_counter() + 0.05
        await asyncio.sleep(0.05)
        response = await client.get("/ping")
        assert response.status_code == 200
        return time.perf_counter() - due

    slow = [asyncio.ensure_future(client.get("/slow")) for _ in range(SLOW_REQUESTS)]
    latency = await timed_ping()
    assert all(r.status_code == 200 for r in await asyncio.gather(*slow))
    return latency


@pytest.fixture
async def corrected_client(make_app: AppFactory) -> AsyncIterator[AsyncClient]:
    """The app's own pattern: async def + AsyncSession from the app's get_db."""
    router = APIRouter()

    # --8<-- [start:corrected_slow_route]
    @router.get("/slow")
    async def slow(db: SessionDep) -> dict[str, str]:
        await db.exec(text(f"SELECT pg_sleep({SLEEP})"))  # type: ignore[call-overload]
        return {"status": "done"}

    # --8<-- [end:corrected_slow_route]

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "pong"}

    app = await make_app()  # an app of its own: its get_db, its engine
    app.include_router(router)
    # Its pool holds a connection for each slow request before the timing: opening them (a
    # connect and its authentication each) is CPU on the loop that a busy machine stretches.
    engine = app.state.resources.engine
    connections = [await engine.connect() for _ in range(SLOW_REQUESTS)]
    for connection in connections:
        await connection.close()  # back to the pool, open
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        yield client


# --8<-- [start:blocking_tests]
@pytest.mark.pattern("E03", "D11")
async def test_original_pattern_stalls_an_unrelated_request(database_url: str) -> None:
    sync_url = make_url(database_url).set(drivername="postgresql+psycopg")
    app, engine = original_app(sync_url.render_as_string(hide_password=False))
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            latency = await cheap_latency_under_load(client)
    finally:
        engine.dispose()
    # The ping waited for (most of) the slow queries, one after the other, on the blocked loop.
    assert latency > SLEEP * (SLOW_REQUESTS - 1)


@pytest.mark.pattern("E03", "D11")
async def test_async_session_does_not_stall_it(corrected_client: AsyncClient) -> None:
    latency = await cheap_latency_under_load(corrected_client)
    assert latency < SLEEP / 2


# --8<-- [end:blocking_tests]
