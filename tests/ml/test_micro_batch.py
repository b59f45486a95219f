"""Micro-batching of single predictions (LC06): concurrent singles answered from one call, each
caller its own answer and log row, a failing row alone, a caller that leaves, the wait bound,
the admission places, the shutdown's drain.

The apps here run as deployed (no get_db override): a batch commits its log rows on a connection
of its own, so what the tests commit is truncated after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sklearn.datasets import load_digits
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import load_settings
from example_app.ml.artifact import LoadedModel, Prediction, load_model
from example_app.ml.inference import Inference
from example_app.services.errors import UnavailableError
from example_app.services.micro_batch import MicroBatcher
from example_app.services.model_registry import DIGITS
from tests.support import PASSWORD, AppFactory, bearer, http_client, log_in, path

ROWS = [[float(v) for v in row] for row in load_digits().data[:64]]
BAD = 16.0  # a first pixel of 16: the faulty model below refuses such a row (the data has none)


_users = itertools.count()


@contextlib.asynccontextmanager
async def signed_in(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with http_client(app, "http://live") as client:
        body = {"email": f"batch{next(_users)}@example.com", "password": PASSWORD, "name": "Batch"}
        assert (await client.post(path("create_user"), json=body)).status_code == 201
        token = (await log_in(client, body["email"])).json()["access_token"]
        client.headers.update(bearer(token))
        yield client


def counting(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of every inference call `app` makes from now on (its batches: up to the wait)."""
    inference: Inference = app.state.resources.inference
    # The test's requests start one after the other: the batch must not go when the first few
    # are all the admitted ones (test_the_wait_is_bounded...); the wait alone decides here.
    monkeypatch.setattr(app.state.resources.batcher, "admitted", None)
    monkeypatch.setattr(app.state.resources.batcher, "wait_seconds", 5.0)  # ends when the batch is full
    calls: list[int] = []
    original = inference.predict

    async def predict(model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        calls.append(len(rows))
        return await original(model, rows)

    monkeypatch.setattr(inference, "predict", predict)
    return calls


class Wrapped:
    """The real model, with a twist: slower, or refusing some rows, as a broken model would."""

    def __init__(self, model: LoadedModel, *, seconds: float = 0.0, refuse_first_pixel: float | None = None):
        self.model, self.seconds, self.refuse = model, seconds, refuse_first_pixel
        self.name, self.version, self.sha256, self.manifest = (
            model.name,
            model.version,
            model.sha256,
            model.manifest,
        )

    def predict_proba(self, x: npt.NDArray[np.float32]) -> Prediction:
        time.sleep(self.seconds)
        if self.refuse is not None and (np.asarray(x)[:, 0] == self.refuse).any():
            raise ValueError("this model cannot take such a row")
        return self.model.predict_proba(x)


def expected(rows: list[list[float]]) -> list[dict[str, Any]]:
    """What a direct batch prediction of `rows` answers, as the routes round it."""
    prediction = load_model().predict_proba(np.asarray(rows, dtype=np.float32))
    return [
        {"label": int(label), "probabilities": [round(float(p), 6) for p in ps]}
        for label, ps in zip(prediction.labels, prediction.probabilities, strict=True)
    ]


async def log_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        statement = (
            "SELECT id, model_name, model_version, input, output, request_id, latency_ms FROM predictions"
        )
        return list((await conn.execute(text(statement + " ORDER BY id"))).all())


# --8<-- [start:batch_tests]
@pytest.mark.pattern("LC06")
async def test_concurrent_singles_are_answered_from_one_call_each_its_own_answer(
    make_app: AppFactory, committed: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app(MODEL_BATCH_WAIT_MS=100, MODEL_BATCH_MAX_ROWS=8, METRICS_TOKEN="t" * 32)
    calls = counting(app, monkeypatch)
    async with signed_in(app) as client:
        answers = await asyncio.gather(*(client.post(path("predict"), json={"pixels": r}) for r in ROWS[:8]))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        metrics = (await client.get("/metrics", headers={"Authorization": "Bearer " + "t" * 32})).text
    assert calls == [8]  # eight callers, one inference call
    assert 'inference_batch_rows_sum{model="digits",version="1.0.0"} 8.0' in metrics
    # Each caller its own answer: the one a direct batch prediction gives its row.
    got = [{"label": a.json()["label"], "probabilities": a.json()["probabilities"]} for a in answers]
    assert got == expected(ROWS[:8])
    # Each row logged as a single prediction is: its input, output, version, and its request's id.
    logged = {row.id: row for row in await log_rows(committed)}
    assert len(logged) == 8
    for answer, pixels in zip(answers, ROWS[:8], strict=True):
        row = logged[answer.json()["id"]]
        assert (row.model_name, row.model_version) == (DIGITS, answer.json()["model"]["version"])
        assert row.input == {"pixels": pixels}
        assert row.output == {
            "label": answer.json()["label"],
            "probabilities": answer.json()["probabilities"],
        }
        assert row.request_id == answer.headers["x-request-id"]
        assert row.latency_ms == answer.json()["latency_ms"] > 0


@pytest.mark.pattern("LC06")
async def test_a_row_the_model_cannot_predict_fails_alone(
    make_app: AppFactory, committed: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_app.api.dependencies import get_digits_model

    app = await make_app(MODEL_BATCH_WAIT_MS=100, MODEL_BATCH_MAX_ROWS=8)
    faulty = Wrapped(app.state.resources.models.models[DIGITS], refuse_first_pixel=BAD)
    app.dependency_overrides[get_digits_model] = lambda: faulty
    calls = counting(app, monkeypatch)
    rows = [list(r) for r in ROWS[:8]]
    rows[3][0] = BAD  # inside the contract (0..16): only this model refuses it
    async with signed_in(app) as client:
        answers = await asyncio.gather(*(client.post(path("predict"), json={"pixels": r}) for r in rows))
    assert calls[0] == 8  # tried together first, then row by row
    assert [a.status_code for a in answers] == [200, 200, 200, 422, 200, 200, 200, 200]
    assert answers[3].json()["detail"] == "the model could not predict this row"
    good = rows[:3] + rows[4:]
    got = [
        {"label": a.json()["label"], "probabilities": a.json()["probabilities"]}
        for a in answers
        if a.is_success
    ]
    assert got == expected(good)
    assert sorted(row.input["pixels"] for row in await log_rows(committed)) == sorted(
        good
    )  # the batch's order


@pytest.mark.pattern("LC06")
async def test_admission_counts_a_batch_of_singles_as_one_place(
    make_app: AppFactory, committed: AsyncEngine
) -> None:
    app = await make_app(MODEL_BATCH_WAIT_MS=1, MODEL_BATCH_MAX_ROWS=8, PREDICTION_MAX_IN_PROGRESS=1)
    admission = app.state.admission
    async with signed_in(app) as client:
        admission.in_progress = 7  # seven singles in progress: room for an eighth
        assert (await client.post(path("predict"), json={"pixels": ROWS[0]})).status_code == 200
        admission.in_progress = 8  # a full place: the next single is shed
        shed = await client.post(path("predict"), json={"pixels": ROWS[0]})
        admission.in_progress = 1  # one single in progress: a batch request needs the whole place
        batch = await client.post(path("predict_batch"), json={"rows": [{"pixels": ROWS[0]}]})
        admission.in_progress = 0
        assert (
            await client.post(path("predict_batch"), json={"rows": [{"pixels": ROWS[0]}]})
        ).status_code == 200
    assert (shed.status_code, batch.status_code) == (503, 503)
    assert shed.headers["retry-after"] == "1"


# --8<-- [end:batch_tests]


@pytest.fixture
def sessions(engine: AsyncEngine, committed: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# --8<-- [start:batcher_tests]
@pytest.mark.pattern("LC06")
async def test_a_caller_that_leaves_does_not_break_the_batch(
    sessions: async_sessionmaker[AsyncSession], committed: AsyncEngine
) -> None:
    model = load_model()
    batcher = MicroBatcher(Inference(2, 5), sessions, wait_seconds=0.2, max_rows=16)
    callers = [asyncio.create_task(batcher.predict(model, row, f"r{i}")) for i, row in enumerate(ROWS[:4])]
    await asyncio.sleep(0.05)  # all four are waiting for the batch
    callers[1].cancel()  # its client went away before the call: left out of it
    answers = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(answers[1], asyncio.CancelledError)
    assert [a.output for a in answers if not isinstance(a, BaseException)] == expected([ROWS[0], *ROWS[2:4]])
    assert [row.request_id for row in await log_rows(committed)] == ["r0", "r2", "r3"]

    # One that leaves while the call computes: the others are answered, its row logged all the same.
    slow = MicroBatcher(Inference(2, 5), sessions, wait_seconds=0.05, max_rows=16)
    slow_model = Wrapped(model, seconds=0.3)
    callers = [asyncio.create_task(slow.predict(slow_model, row, f"s{i}")) for i, row in enumerate(ROWS[:3])]  # type: ignore[arg-type]
    await asyncio.sleep(0.15)  # the batch is in the model now
    callers[0].cancel()
    answers = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(answers[0], asyncio.CancelledError)
    assert [a.output for a in answers[1:] if not isinstance(a, BaseException)] == expected(ROWS[1:3])
    assert [row.request_id for row in await log_rows(committed)][3:] == ["s0", "s1", "s2"]


@pytest.mark.pattern("LC06")
async def test_the_wait_is_bounded_and_ends_early_when_no_one_else_can_come(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    model = load_model()
    alone = MicroBatcher(Inference(2, 5), sessions, wait_seconds=0.3, max_rows=8)
    started = time.perf_counter()
    await alone.predict(model, ROWS[0], None)
    waited = time.perf_counter() - started
    assert 0.3 <= waited < 1.5  # the whole wait, then no longer than a call and an INSERT

    # A full batch goes at once, whatever the wait.
    full = MicroBatcher(Inference(2, 5), sessions, wait_seconds=30, max_rows=3)
    started = time.perf_counter()
    await asyncio.gather(*(full.predict(model, row, None) for row in ROWS[:3]))
    assert time.perf_counter() - started < 1.5

    # Every admitted single is here (the admission counter says one): no reason to wait.
    counted = MicroBatcher(Inference(2, 5), sessions, wait_seconds=30, max_rows=8, admitted=lambda: 1)
    started = time.perf_counter()
    await counted.predict(model, ROWS[0], None)
    assert time.perf_counter() - started < 1.5


@pytest.mark.pattern("LC06")
async def test_the_inference_timeout_still_holds_for_a_batch(
    sessions: async_sessionmaker[AsyncSession], committed: AsyncEngine
) -> None:
    slow_model = Wrapped(load_model(), seconds=0.5)
    batcher = MicroBatcher(Inference(1, 0.1), sessions, wait_seconds=0.01, max_rows=8)
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(batcher.predict(slow_model, row, None) for row in ROWS[:3]),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert time.perf_counter() - started < 0.45  # the callers' 503s do not wait for the slow call
    assert all(isinstance(a, UnavailableError) and "no prediction within 0.1 s" in str(a) for a in answers)
    await asyncio.sleep(0.5)  # the thread finishes its computation (a thread cannot be killed)
    assert await log_rows(committed) == []


@pytest.mark.pattern("LC06")
async def test_shutdown_answers_what_is_collected_and_refuses_more(
    sessions: async_sessionmaker[AsyncSession], committed: AsyncEngine
) -> None:
    model = load_model()
    batcher = MicroBatcher(Inference(2, 5), sessions, wait_seconds=30, max_rows=16)
    callers = [asyncio.create_task(batcher.predict(model, row, None)) for row in ROWS[:5]]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await batcher.close()  # sends the collected batch now, and waits for it
    assert time.perf_counter() - started < 5
    assert all(c.done() and not c.cancelled() for c in callers)
    assert [c.result().output for c in callers] == expected(ROWS[:5])
    assert len(await log_rows(committed)) == 5
    with pytest.raises(UnavailableError, match="shutting down"):
        await batcher.predict(model, ROWS[0], None)


# --8<-- [end:batcher_tests]


@pytest.mark.pattern("LC06")
@pytest.mark.parametrize(
    "changes",
    [
        {"MODEL_BATCH_WAIT_MS": -1},
        {"MODEL_BATCH_WAIT_MS": 101},
        {"MODEL_BATCH_MAX_ROWS": 1},
        {"MODEL_BATCH_MAX_ROWS": 1001},
    ],
)
def test_batch_settings_are_bounded(changes: dict[str, Any], database_url: str) -> None:
    with pytest.raises(SystemExit, match="MODEL_BATCH_"):
        load_settings(DATABASE_URL=database_url, **changes)
