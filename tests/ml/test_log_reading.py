"""Reading the prediction log back: keyset pages (ML05) and a streamed export (ML08)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from devtools.postgres_provider import free_port
from example_app.services.keyset import decode_cursor
from tests.support import PASSWORD, bearer, log_in, path, sql

# Rows made in SQL, as many as wanted, in one statement: half of them share a timestamp, so the
# id has to break ties. `:n` rows, `:start` seconds ago and onwards.
SEED = """
INSERT INTO predictions (model_name, model_version, model_sha256, input, output, latency_ms, created_at)
SELECT 'digits', '1.0.0', repeat('0', 64),
       jsonb_build_object('pixels', (SELECT jsonb_agg(g % 17) FROM generate_series(1, 64) g)),
       jsonb_build_object('label', i % 10), 1.5,
       now() - make_interval(secs => :start) + make_interval(secs => i / 2)
FROM generate_series(1, :n) i
"""


async def all_pages(client: AsyncClient, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await client.get(path("list_predictions"), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if page["next"] is None:
            return items
        params["after"] = page["next"]


def newest_first(items: list[dict[str, Any]]) -> bool:
    keys = [(item["created_at"], item["id"]) for item in items]
    return keys == sorted(keys, reverse=True)


# --8<-- [start:keyset_tests]
@pytest.mark.pattern("ML05")
async def test_pages_cover_every_row_once_newest_first(client: AsyncClient, db_session: AsyncSession) -> None:
    await sql(db_session, SEED, n=250, start=1000)
    items = await all_pages(client, limit=20)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == 250
    assert newest_first(items)


@pytest.mark.pattern("ML05")
async def test_pages_stay_gap_free_while_rows_are_inserted(
    live_client: AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(SEED), {"n": 300, "start": 1000})
        before = set((await conn.execute(text("SELECT id FROM predictions"))).scalars())

    async def keep_inserting() -> None:
        while True:  # new predictions arrive all the time, each committed on its own
            async with engine.begin() as conn:
                await conn.execute(text(SEED), {"n": 3, "start": 0})
            await asyncio.sleep(0.002)

    writer = asyncio.create_task(keep_inserting())
    try:
        items = await all_pages(live_client, limit=7)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))  # no row twice
    assert before <= set(ids)  # no row that existed when paging began is skipped
    assert newest_first(items)


@pytest.mark.pattern("ML05")
async def test_a_deep_page_seeks_through_the_index(client: AsyncClient, db_session: AsyncSession) -> None:
    await sql(db_session, SEED, n=500, start=1000)
    first = (await client.get(path("list_predictions"), params={"limit": 100})).json()
    after = decode_cursor(first["next"])
    await sql(db_session, "SET LOCAL enable_seqscan = off")  # a small table: make the plan visible
    plan = "\n".join(
        row[0]
        for row in await sql(
            db_session,
            "EXPLAIN SELECT id, model_name, model_version, output, latency_ms, created_at FROM predictions "
            "WHERE (created_at, id) < (:t, :i) ORDER BY created_at DESC, id DESC LIMIT 21",
            t=after.created_at,
            i=after.id,
        )
    )
    assert "Index Scan Backward using ix_predictions_created_at_id" in plan, plan
    assert "Index Cond: (ROW(created_at, id) < ROW(" in plan  # a seek, not a filter after a scan


@pytest.mark.pattern("ML05")
@pytest.mark.parametrize("cursor", ["nonsense", "bm90IGEgY3Vyc29y", "MjAyNi0wMS0wMXwx", "x" * 101])
async def test_a_cursor_the_api_did_not_give_is_a_422(client: AsyncClient, cursor: str) -> None:
    response = await client.get(path("list_predictions"), params={"after": cursor})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "after"]


# --8<-- [end:keyset_tests]


@contextlib.asynccontextmanager
async def served_app(app: FastAPI) -> AsyncIterator[str]:
    """The app under uvicorn, in this event loop, on a real socket: a client can go away mid-body.

    Its lifespan has run already (the `app` fixture): uvicorn does not run it again."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped during start-up"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def signed_in(http: httpx.AsyncClient) -> dict[str, str]:
    """Sign up and log in through the served app (committed: the test deletes the user after)."""
    body = {"email": "export@example.com", "password": PASSWORD, "name": "Export"}
    assert (await http.post(path("create_user"), json=body)).status_code == 201
    return bearer((await log_in(http, body["email"])).json()["access_token"])


async def app_connections(engine: AsyncEngine) -> list[str]:
    """States of the other connections busy reading predictions (the app's, seen from the server);
    an idle one in a pool is done, whatever it ran last."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE '%FROM predictions%'"
            )
        )
        return list(rows.scalars())


# --8<-- [start:export_tests]
@pytest.mark.pattern("ML08")
async def test_the_export_streams_from_a_cursor_and_lets_go_when_the_client_does(
    engine: AsyncEngine, app: FastAPI
) -> None:
    app_engine = app.state.resources.engine

    async with engine.begin() as conn:
        await conn.execute(text(SEED), {"n": 20_000, "start": 100_000})  # about 12 MB of JSON Lines
    try:
        async with served_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
            http.headers.update(await signed_in(http))  # the ML routes take a token
            # 1. The first line arrives while the app is still inside the query: its connection
            #    is in a transaction with the cursor open, and the rest of the rows are unread.
            async with http.stream("GET", path("export_predictions")) as response:
                lines = response.aiter_lines()
                first = json.loads(await anext(lines))
                assert first["input"]["pixels"][:3] == [1, 2, 3]
                await asyncio.sleep(0.3)
                # Waiting for the client to read ("idle in transaction"), or fetching ("active").
                assert await app_connections(engine) in (["idle in transaction"], ["active"])
                assert app_engine.pool.checkedout() == 1
            # 2. The client left after one line: the stream is cancelled, the cursor closed and
            #    the connection is back in the pool.
            for _ in range(50):
                if app_engine.pool.checkedout() == 0 and not await app_connections(engine):
                    break
                await asyncio.sleep(0.1)
            assert app_engine.pool.checkedout() == 0
            assert await app_connections(engine) == []
            # 3. Read to the end, every row arrives, once, in order.
            async with http.stream("GET", path("export_predictions")) as response:
                assert response.headers["content-type"] == "application/x-ndjson"
                ids = [json.loads(line)["id"] async for line in response.aiter_lines() if line]
            assert len(ids) == 20_000
            assert ids == sorted(ids)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE predictions"))
            await conn.execute(text("DELETE FROM users WHERE email = 'export@example.com'"))


# --8<-- [end:export_tests]
