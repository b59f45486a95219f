"""Shadow predictions (LC03): the candidate predicts production's requests after they are answered,
its rows are logged beside theirs and never returned, and the report is the log's own numbers.

The app here is as deployed (no get_db override, real commits): a shadow row references a
committed production row, which the suite's rolled-back session would hide from the shadow
worker's own connection. What the tests commit is truncated after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sklearn.datasets import load_digits
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import APP_DIR
from example_app.ml.artifact import DIGITS_MODEL_DIR, load_model
from example_app.ml.inference import Inference
from example_app.services.model_registry import CANDIDATE
from example_app.services.shadow import BUSY, FAILED, LOGGED, QUEUE_FULL, ShadowRunner, ShadowWork
from tests.ml.artifacts import coarse_digits_model, tiny_blocks_model
from tests.ml.conftest import Register
from tests.support import PASSWORD, AppFactory, bearer, http_client, log_in, path

DIGITS = [[float(v) for v in row] for row in load_digits().data[:400]]
ROOTS = [APP_DIR / "ml" / "artifacts"]


def within(count: int, n: int, share: float, sigmas: float = 4.5) -> bool:
    """`count` of `n` draws is a binomial(n, share) count (4.5 sigmas: a false alarm in 150,000)."""
    return abs(count - n * share) <= sigmas * math.sqrt(n * share * (1 - share))


_users = itertools.count()


@contextlib.asynccontextmanager
async def signed_in(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client on `app` as deployed, signed in as a user it committed."""
    async with http_client(app, "http://live") as client:
        body = {"email": f"shadow{next(_users)}@example.com", "password": PASSWORD, "name": "Shadow"}
        assert (await client.post(path("create_user"), json=body)).status_code == 201
        token = (await log_in(client, body["email"])).json()["access_token"]
        client.headers.update(bearer(token))
        yield client


async def rows(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(statement), params)).all())


# --8<-- [start:shadow_tests]
@pytest.mark.pattern("LC03")
async def test_every_production_prediction_is_shadowed_logged_and_never_returned(
    tmp_path: Path, register: Register, make_app: AppFactory, committed: AsyncEngine
) -> None:
    coarse_digits_model(tmp_path / "digits-2.0.0", "2.0.0")
    await register(tmp_path / "digits-2.0.0", CANDIDATE)
    app = await make_app(MODEL_SHADOW_PERCENT=100, MODEL_ROOTS=[*ROOTS, tmp_path])
    async with signed_in(app) as client:
        answered = []
        for pixels in DIGITS[:40]:
            response = await client.post(path("predict"), json={"pixels": pixels})
            assert response.status_code == 200, response.text
            answered.append(response.json())
        batch = await client.post(
            path("predict_batch"), json={"rows": [{"pixels": p} for p in DIGITS[40:50]]}
        )
        assert batch.status_code == 200, batch.text
        # A request that names a version is not production traffic: never shadowed.
        explicit = await client.post(path("predict"), params={"version": "1.0.0"}, json={"pixels": DIGITS[0]})
        assert explicit.status_code == 200
        await app.state.resources.shadow.join()
    # The callers hear production only, and nothing of the candidate.
    assert {answer["model"]["version"] for answer in answered} == {"1.0.0"}
    assert batch.json()["model"]["version"] == "1.0.0"
    assert "2.0.0" not in str([*answered, batch.json(), explicit.json()])
    production_ids = [answer["id"] for answer in answered] + [p["id"] for p in batch.json()["predictions"]]
    pairs = await rows(
        committed,
        "SELECT p.id, s.model_version, s.input = p.input, s.request_id = p.request_id, p.shadow_of "
        "FROM predictions s JOIN predictions p ON p.id = s.shadow_of ORDER BY p.id",
    )
    assert [pair[0] for pair in pairs] == production_ids  # one shadow per production row, linked
    assert all(pair[1:] == ("2.0.0", True, True, None) for pair in pairs)
    assert app.state.resources.shadow.counts == {LOGGED: 50}

    # The report is the log's numbers: a hand count of the same rows.
    logged = await rows(
        committed,
        "SELECT p.output -> 'label', s.output -> 'label', p.latency_ms, s.latency_ms "
        "FROM predictions s JOIN predictions p ON p.id = s.shadow_of",
    )
    async with signed_in(app) as client:
        report = (await client.get(path("shadow_report", model_name="digits"), params={"last": 1000})).json()
        newest = (await client.get(path("shadow_report", model_name="digits"), params={"last": 5})).json()
    agreeing = sum(production == shadow for production, shadow, _, _ in logged)
    assert 0 < agreeing < 50  # the candidate is another model: the report has something to show
    (pair,) = report["pairs"]
    assert (pair["production_version"], pair["candidate_version"]) == ("1.0.0", "2.0.0")
    assert (report["rows"], pair["rows"], pair["agreeing"]) == (50, 50, agreeing)
    assert pair["agreement"] == pytest.approx(agreeing / 50)
    for key, column in (("production_latency", 2), ("candidate_latency", 3)):
        values = [row[column] for row in logged]
        assert pair[key]["p50_ms"] == pytest.approx(np.percentile(values, 50))  # linear: percentile_cont
        assert pair[key]["p95_ms"] == pytest.approx(np.percentile(values, 95))
    assert newest["rows"] == 5  # the window: the newest 5 production rows with a twin


@pytest.mark.pattern("LC03")
@pytest.mark.parametrize("percent", [0, 30])
async def test_the_shadowed_share_is_the_setting_within_statistical_bounds(
    percent: float, tmp_path: Path, register: Register, make_app: AppFactory, committed: AsyncEngine
) -> None:
    coarse_digits_model(tmp_path / "digits-2.0.0", "2.0.0")
    await register(tmp_path / "digits-2.0.0", CANDIDATE)
    app = await make_app(MODEL_SHADOW_PERCENT=percent, MODEL_ROOTS=[*ROOTS, tmp_path])
    n = 300
    async with signed_in(app) as client:
        for pixels in DIGITS[:n]:
            assert (await client.post(path("predict"), json={"pixels": pixels})).status_code == 200
        await app.state.resources.shadow.join()
    (shadowed,) = await rows(committed, "SELECT count(*) FROM predictions WHERE shadow_of IS NOT NULL")
    if percent == 0:
        assert shadowed[0] == 0
        assert app.state.resources.shadow.counts == {}
    else:
        assert within(shadowed[0], n, percent / 100), shadowed[0]
        assert app.state.resources.shadow.counts == {LOGGED: shadowed[0]}


@pytest.mark.pattern("LC03")
async def test_canary_callers_are_not_shadowed(
    tmp_path: Path, register: Register, make_app: AppFactory, committed: AsyncEngine
) -> None:
    coarse_digits_model(tmp_path / "digits-2.0.0", "2.0.0")
    await register(tmp_path / "digits-2.0.0", CANDIDATE)
    # Every caller is a canary caller: the candidate answers, there is nothing to shadow.
    app = await make_app(MODEL_SHADOW_PERCENT=100, MODEL_CANARY_PERCENT=100, MODEL_ROOTS=[*ROOTS, tmp_path])
    async with signed_in(app) as client:
        for pixels in DIGITS[:10]:
            response = await client.post(path("predict"), json={"pixels": pixels})
            assert response.json()["model"]["version"] == "2.0.0"
        await app.state.resources.shadow.join()
    assert await rows(committed, "SELECT id FROM predictions WHERE shadow_of IS NOT NULL") == []
    assert app.state.resources.shadow.counts == {}


@pytest.mark.pattern("LC03")
async def test_no_candidate_alias_no_shadow(make_app: AppFactory, committed: AsyncEngine) -> None:
    app = await make_app(MODEL_SHADOW_PERCENT=100)
    assert app.state.resources.models.candidate("digits") is None
    async with signed_in(app) as client:
        for pixels in DIGITS[:10]:
            assert (await client.post(path("predict"), json={"pixels": pixels})).status_code == 200
        await app.state.resources.shadow.join()
    assert await rows(committed, "SELECT id FROM predictions WHERE shadow_of IS NOT NULL") == []
    assert len(await rows(committed, "SELECT id FROM predictions")) == 10


@pytest.mark.pattern("LC03")
async def test_a_candidate_that_fails_never_affects_the_caller(
    tmp_path: Path, register: Register, make_app: AppFactory, committed: AsyncEngine
) -> None:
    # 16 inputs where production sends 64: every one of its predictions raises.
    tiny_blocks_model(tmp_path / "digits-3.0.0", "3.0.0")
    await register(tmp_path / "digits-3.0.0", CANDIDATE)
    app = await make_app(MODEL_SHADOW_PERCENT=100, MODEL_ROOTS=[*ROOTS, tmp_path])
    assert app.state.resources.models.candidate("digits").version == "3.0.0"
    async with signed_in(app) as client:
        for pixels in DIGITS[:20]:
            response = await client.post(path("predict"), json={"pixels": pixels})
            assert response.status_code == 200, response.text
            assert response.json()["model"]["version"] == "1.0.0"
        await app.state.resources.shadow.join()
        assert app.state.resources.shadow.counts == {FAILED: 20}
        # The worker is still there for the next one.
        response = await client.post(path("predict"), json={"pixels": DIGITS[0]})
        assert response.status_code == 200
        await app.state.resources.shadow.join()
    assert app.state.resources.shadow.counts == {FAILED: 21}
    assert len(await rows(committed, "SELECT id FROM predictions WHERE shadow_of IS NOT NULL")) == 0
    assert len(await rows(committed, "SELECT id FROM predictions")) == 21


@pytest.mark.pattern("LC03")
async def test_shadow_work_never_waits_in_line_with_requests_and_is_dropped_when_it_cannot_run(
    engine: AsyncEngine,
) -> None:
    inference = Inference(concurrency=1, timeout=5)
    runner = ShadowRunner(
        async_sessionmaker(engine, class_=AsyncSession), inference, max_pending_rows=3, max_wait=0.05
    )
    candidate = load_model(DIGITS_MODEL_DIR)
    work = ShadowWork(candidate, [1], [DIGITS[0]], None)
    # A request holds the only inference slot: the shadow never queues for it, and is dropped.
    request = object()
    inference.limiter.acquire_on_behalf_of_nowait(request)
    assert await inference.predict_if_free(candidate, np.asarray([DIGITS[0]], np.float32)) is None
    worker = asyncio.create_task(runner.run())
    try:
        runner.offer(work)
        with anyio.fail_after(5):
            await runner.join()
        assert runner.counts == {BUSY: 1}
        # The queue is bounded in rows: what does not fit is dropped at once, never waited for.
        for _ in range(5):
            runner.offer(ShadowWork(candidate, [1], [DIGITS[0]], None))
        assert runner.counts[QUEUE_FULL] == 2
        with anyio.fail_after(5):
            await runner.join()
        assert runner.counts[BUSY] + runner.counts[QUEUE_FULL] == 6
    finally:
        inference.limiter.release_on_behalf_of(request)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


@pytest.mark.pattern("LC03")
async def test_the_report_refuses_bad_windows_with_a_clear_4xx(
    make_app: AppFactory, committed: AsyncEngine
) -> None:
    app = await make_app()
    async with signed_in(app) as client:
        report = path("shadow_report", model_name="digits")
        unknown = await client.get(path("shadow_report", model_name="nosuchmodel"))
        assert unknown.status_code == 404
        assert "nosuchmodel" in unknown.json()["detail"]
        for params in ({"last": 0}, {"last": 100_001}, {"since": "2026-12-07T10:00:00"}):  # naive: no offset
            assert (await client.get(report, params=params)).status_code == 422, params
        backwards = await client.get(
            report, params={"since": "2026-12-07T10:00:00Z", "until": "2026-12-07T09:00:00Z"}
        )
        assert backwards.status_code == 422
        assert "until must be later than since" in backwards.text
        empty = await client.get(report)
        assert empty.status_code == 200
        assert (empty.json()["rows"], empty.json()["pairs"]) == (0, [])
    async with http_client(app, "http://live") as anonymous:
        assert (await anonymous.get(report)).status_code == 401


# --8<-- [end:shadow_tests]
