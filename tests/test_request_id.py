"""Request ids (OB04): taken from X-Request-ID when well formed, else made; on the answer, on the
request's log lines, in every error body and on each prediction row it logs."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.api.dependencies import get_db
from example_app.core.request_id import HEADER, RequestIdFilter
from tests.support import AppFactory, Caller, path, sql

DIGIT = {"pixels": [0.0] * 64}


# --8<-- [start:join_test]
@pytest.mark.pattern("OB04")
async def test_one_id_joins_a_log_line_an_error_body_and_a_prediction_row(
    client: AsyncClient,
    app: FastAPI,
    caller: Caller,
    db_session: AsyncSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {**caller.headers, HEADER: "order-7.retry_1"}  # a caller's own id, well formed
    nowhere = create_async_engine("postgresql+asyncpg://nobody:x@127.0.0.1:9/none")

    async def unreachable_db() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(nowhere) as session:
            yield session

    test_db, app.dependency_overrides[get_db] = app.dependency_overrides[get_db], unreachable_db
    caplog.handler.addFilter(RequestIdFilter())  # what the served app's log handlers carry
    try:
        with caplog.at_level(logging.WARNING, logger="example_app"):
            failed = await client.post(path("predict"), json=DIGIT, headers=headers)  # the outage
    finally:
        app.dependency_overrides[get_db] = test_db
        await nowhere.dispose()
    retried = await client.post(path("predict"), json=DIGIT, headers=headers)  # the same id, again

    assert failed.status_code == 503
    assert failed.json()["request_id"] == failed.headers[HEADER] == "order-7.retry_1"
    (line,) = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert line.request_id == "order-7.retry_1"  # type: ignore[attr-defined]
    assert retried.status_code == 200
    row = await sql(db_session, "SELECT request_id FROM predictions WHERE id = :id", id=retried.json()["id"])
    assert row.scalar_one() == "order-7.retry_1"


# --8<-- [end:join_test]


@pytest.mark.pattern("OB04")
@pytest.mark.parametrize("inbound", [None, b"", b"x" * 65, b"a b", "é".encode(), b'quote"d', b"x;y"])
async def test_an_id_that_is_missing_or_malformed_is_replaced_never_echoed(
    client: AsyncClient, inbound: bytes | None
) -> None:
    headers = {HEADER.encode(): inbound} if inbound is not None else {}
    response = await client.get(path("get_user", user_id=999_999), headers=headers)
    made = response.headers[HEADER]
    assert made.encode() != inbound
    assert re.fullmatch("[0-9a-f]{32}", made)  # uuid4().hex
    assert response.json()["request_id"] == made


@pytest.mark.pattern("OB04")
async def test_every_answer_has_its_id_a_shed_or_refused_request_too(
    client: AsyncClient, app: FastAPI, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = await client.get(path("list_posts"))
    too_big = await client.post(
        path("create_post"), content=b" " * 3_000_000, headers={**caller.headers, HEADER: "big-1"}
    )
    monkeypatch.setattr(app.state.admission, "limit", 0)  # every prediction is shed
    shed = await client.post(path("predict"), json=DIGIT, headers={**caller.headers, HEADER: "shed-1"})
    assert len(ok.headers[HEADER]) == 32
    assert (too_big.status_code, too_big.json()["request_id"], too_big.headers[HEADER]) == (
        413,
        "big-1",
        "big-1",
    )
    assert (shed.status_code, shed.json()["request_id"], shed.headers[HEADER]) == (503, "shed-1", "shed-1")


@pytest.mark.pattern("OB04")
async def test_a_bug_is_a_500_with_the_one_body_and_its_id(make_app: AppFactory) -> None:
    app = await make_app()

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # as uvicorn: logged, not raised
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/broken", headers={HEADER: "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "request_id": "bug-1"}
    assert response.headers[HEADER] == "bug-1"
