"""The prediction log (ML03) and batches (ML04): validated input, one INSERT, rows in order."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.schemas.prediction import PREDICTION_BATCH_MAX
from tests.support import path, sql


async def logged(db: AsyncSession) -> int:
    return int((await sql(db, "SELECT count(*) FROM predictions")).scalar_one())


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement sent on the test engine's connections, as the driver gets it."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


# --8<-- [start:log_tests]
# --8<-- [start:first_prediction]
@pytest.mark.pattern("ML03")
async def test_each_prediction_is_logged_with_input_output_and_latency(
    client: AsyncClient, db_session: AsyncSession, digit: dict[str, Any]
) -> None:
    body = (await client.post(path("predict"), json=digit)).json()
    row = (
        await sql(
            db_session,
            "SELECT input, output, latency_ms, created_at FROM predictions WHERE id = :id",
            id=body["id"],
        )
    ).one()
    assert row.input == digit
    assert row.output == {"label": body["label"], "probabilities": body["probabilities"]}
    assert row.latency_ms == body["latency_ms"] > 0
    assert row.created_at.tzinfo is not None  # timestamptz


# --8<-- [end:first_prediction]
@pytest.mark.pattern("ML03")
async def test_the_jsonb_query_of_the_docs_uses_its_gin_index(
    client: AsyncClient, db_session: AsyncSession, digit: dict[str, Any]
) -> None:
    await client.post(path("predict"), json=digit)
    query = """SELECT id FROM predictions WHERE output @> '{"label": 0}'"""
    assert len((await sql(db_session, query)).all()) == 1
    await sql(db_session, "SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its hand
    plan = "\n".join(r[0] for r in await sql(db_session, f"EXPLAIN {query}"))
    assert "ix_predictions_output" in plan, plan


# --8<-- [end:log_tests]


# --8<-- [start:batch_tests]
@pytest.mark.pattern("ML04")
async def test_a_batch_is_one_predict_and_one_insert(
    client: AsyncClient, db_session: AsyncSession, statements: list[str], digit: dict[str, Any]
) -> None:
    rows = [{"pixels": [float((i + j) % 17) for j in range(64)]} for i in range(PREDICTION_BATCH_MAX)]
    rows[7] = digit
    response = await client.post(path("predict_batch"), json={"rows": rows})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(rows)
    assert predictions[7]["label"] == 0  # answers come back in the order of the inputs
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO PREDICTIONS")]
    assert len(inserts) == 1, f"{len(inserts)} INSERT statements for one batch"
    assert inserts[0].count("), (") == len(rows) - 1  # one statement carries every row
    stored = (
        await sql(
            db_session,
            "SELECT id, input FROM predictions WHERE id = ANY(:ids) ORDER BY id",
            ids=[p["id"] for p in predictions],
        )
    ).all()
    assert [r.id for r in stored] == [p["id"] for p in predictions]  # ids ascend in input order
    assert stored[7].input == digit


@pytest.mark.pattern("ML04")
async def test_over_the_cap_is_a_422_naming_the_cap(
    client: AsyncClient, db_session: AsyncSession, digit: dict[str, Any]
) -> None:
    cap = PREDICTION_BATCH_MAX
    response = await client.post(path("predict_batch"), json={"rows": [digit] * (cap + 1)})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "rows"]
    assert f"at most {cap} items" in error["msg"]
    assert len(json.dumps(error)) < 2_000  # the 1,001 rows are not echoed back
    assert await logged(db_session) == 0


@pytest.mark.pattern("ML04")
async def test_one_bad_row_is_a_422_naming_its_index_and_nothing_is_written(
    client: AsyncClient, db_session: AsyncSession, digit: dict[str, Any]
) -> None:
    bad = {"pixels": [*digit["pixels"][:63], 17.0]}
    response = await client.post(path("predict_batch"), json={"rows": [digit, digit, bad, digit]})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "rows", 2, "pixels", 63]
    assert await logged(db_session) == 0


# --8<-- [end:batch_tests]


def pixels(values: Sequence[str], extra: str = "") -> str:
    """A raw JSON body: NaN and Infinity are JSON that Python's parser accepts, not json.dumps output."""
    return '{"pixels": [' + ", ".join(values) + "]" + extra + "}"


@pytest.mark.pattern("ML04")
@pytest.mark.parametrize(
    ("raw", "loc", "message"),
    [
        (pixels("1" * 63), ["body", "pixels"], "at least 64 items"),
        (pixels("1" * 65), ["body", "pixels"], "at most 64 items"),
        (pixels(["NaN", *"1" * 63]), ["body", "pixels", 0], "finite number"),
        (pixels(["1", "Infinity", *"1" * 62]), ["body", "pixels", 1], "finite number"),
        (pixels(["1", "2", '"3"', *"1" * 61]), ["body", "pixels", 2], "valid number"),
        (pixels(["1", "2", "3", "-1", *"1" * 60]), ["body", "pixels", 3], "greater than or equal to 0"),
        (pixels("1" * 64, extra=', "extra": 1'), ["body", "extra"], "Extra inputs"),
    ],
)
async def test_a_malformed_input_is_a_422_naming_the_field(
    client: AsyncClient, db_session: AsyncSession, raw: str, loc: list[Any], message: str
) -> None:
    response = await client.post(path("predict"), content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]
    assert await logged(db_session) == 0
