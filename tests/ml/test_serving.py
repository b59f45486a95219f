"""Serving the model (ML01, ML02, ML12): loaded once, readiness, off-loop inference, identity."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import DIGITS_MODEL_DIR, LoadedModel, Prediction
from example_app.ml.inference import Inference
from example_app.services.model_registry import DIGITS
from tests.ml.artifacts import copy_of_digits
from tests.ml.conftest import Register
from tests.support import AppFactory, Caller, ClientFactory, path, sql


@pytest.fixture
async def model_dir(tmp_path: Path, register: Register) -> Path:
    """A copy of the committed artifact registered as digits 1.0.1 with the alias `spoilt`, for
    an app of the test's own to serve (MODEL_ALIAS="spoilt"; tests may spoil the files)."""
    copy = tmp_path / "digits"
    copy_of_digits(copy, "1.0.1")
    await register(copy, "spoilt")
    return copy


SPOILT = {"MODEL_ALIAS": "spoilt", "MODEL_ROOTS": []}  # + the test's tmp_path


# --8<-- [start:readiness_tests]
@pytest.mark.pattern("ML01")
async def test_lifespan_loads_the_model_once_and_readiness_is_200(client: AsyncClient, app: FastAPI) -> None:
    model = app.state.resources.models.models[DIGITS]
    assert isinstance(model, LoadedModel)
    response = await client.get(path("ready"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    embedder = app.state.resources.embedder
    assert body["models"] == {
        DIGITS: f"{model.version} sha256:{model.sha256[:12]}",
        embedder.name: embedder.version,  # search's model: served too, so readiness waits for it
    }
    await client.post(path("predict"), json={"pixels": [0.0] * 64})
    assert app.state.resources.models.models[DIGITS] is model  # the same object: loaded once, not per request


@pytest.mark.pattern("ML01", "ML10")
async def test_a_tampered_artifact_keeps_readiness_at_503(
    model_dir: Path,
    make_app: AppFactory,
    make_client: ClientFactory,
    caller: Caller,
    caplog: pytest.LogCaptureFixture,
    digit: dict[str, Any],
) -> None:
    onnx = model_dir / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="example_app.services.model_registry"):
        client = await make_client(await make_app(**SPOILT | {"MODEL_ROOTS": [model_dir.parent]}))
    client.headers.update(caller.headers)
    ready = await client.get(path("ready"))
    predicted = await client.post(path("predict"), json=digit)
    liveness = await client.get(path("health"))
    assert ready.status_code == 503
    assert "checksum mismatch" in ready.json()["errors"][DIGITS]
    assert predicted.status_code == 503
    assert predicted.headers["retry-after"] == "1"
    assert liveness.status_code == 200  # liveness stays cheap: the process is fine, not ready
    (line,) = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert "\n" not in line
    assert "model digits not loaded: model checksum mismatch" in line


@pytest.mark.pattern("ML01")
async def test_a_missing_artifact_keeps_readiness_at_503(
    model_dir: Path, make_app: AppFactory, make_client: ClientFactory
) -> None:
    (model_dir / "model.onnx").unlink()
    client = await make_client(await make_app(**SPOILT | {"MODEL_ROOTS": [model_dir.parent]}))
    ready = await client.get(path("ready"))
    assert ready.status_code == 503
    assert ready.json()["errors"][DIGITS].startswith("model file missing")


@pytest.mark.pattern("ML01")
async def test_readiness_is_503_without_the_database(client: AsyncClient, app: FastAPI) -> None:
    from example_app.api.dependencies import get_db

    nowhere = create_async_engine("postgresql+asyncpg://nobody:secret@127.0.0.1:9/none")

    async def unreachable_db() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(nowhere) as session:
            yield session

    app.dependency_overrides[get_db] = unreachable_db
    try:
        response = await client.get(path("ready"))
    finally:
        await nowhere.dispose()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert "secret" not in response.text


@pytest.mark.pattern("ML01")
async def test_readiness_is_503_before_any_model_is_loaded(client: AsyncClient, app: FastAPI) -> None:
    from example_app.api.dependencies import get_models
    from example_app.services.model_registry import ModelRegistry

    app.dependency_overrides[get_models] = lambda: ModelRegistry(app.state.resources.sessions, [])  # none yet
    response = await client.get(path("ready"))
    assert response.status_code == 503
    assert response.json()["status"] == "error"


# --8<-- [end:readiness_tests]


class SlowModel:
    """Wraps the real model; each call also blocks its thread, like a big model would."""

    def __init__(self, model: LoadedModel, seconds: float) -> None:
        self.model, self.seconds = model, seconds
        self.name, self.version, self.sha256 = model.name, model.version, model.sha256
        self.manifest = model.manifest

    def predict_proba(self, x: npt.NDArray[np.float32]) -> Prediction:
        time.sleep(self.seconds)  # blocking, on purpose: on the event loop this would stall it
        return self.model.predict_proba(x)


# --8<-- [start:off_loop_test]
@pytest.mark.pattern("ML02")
async def test_predictions_in_flight_do_not_stall_other_requests(
    live_client: AsyncClient, app: FastAPI, digit: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_app.api.dependencies import get_digits_model, get_inference

    slow = SlowModel(app.state.resources.models.models[DIGITS], seconds=0.5)
    app.dependency_overrides[get_digits_model] = lambda: slow
    app.dependency_overrides[get_inference] = lambda: Inference(concurrency=2, timeout=10)
    monkeypatch.setattr(app.state.admission, "limit", 4)  # all four admitted: two wait for a thread
    try:
        predictions = [asyncio.create_task(live_client.post(path("predict"), json=digit)) for _ in range(4)]
        await asyncio.sleep(0.1)  # both workers are now blocked in the model
        started = time.perf_counter()
        liveness = await live_client.get(path("health"))
        waited = time.perf_counter() - started
        answers = await asyncio.gather(*predictions)
    finally:
        app.dependency_overrides.clear()
    assert liveness.status_code == 200
    assert waited < 0.25, f"/health waited {waited:.3f} s behind the predictions"
    assert [a.status_code for a in answers] == [200] * 4


@pytest.mark.pattern("ML02")
async def test_the_lifespan_freezes_what_start_up_made(make_app: AppFactory) -> None:
    gc.unfreeze()  # whatever an earlier app of this process froze
    await make_app()
    # the models, metadata and schemas: out of the way of the collector's full collections
    assert gc.get_freeze_count() > 10_000


# --8<-- [start:admission_test]
@pytest.mark.pattern("ML02")
async def test_predictions_over_the_admission_limit_are_turned_away_at_once(
    live_client: AsyncClient, app: FastAPI, digit: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_app.api.dependencies import get_digits_model

    slow = SlowModel(app.state.resources.models.models[DIGITS], seconds=0.5)
    app.dependency_overrides[get_digits_model] = lambda: slow
    monkeypatch.setattr(app.state.admission, "limit", 2)
    batch = {"rows": [digit] * 3}
    try:
        admitted = [asyncio.create_task(live_client.post(path("predict"), json=digit)) for _ in range(2)]
        await asyncio.sleep(0.1)  # both are in the model now
        started = time.perf_counter()
        turned_away = [await live_client.post(path("predict_batch"), json=batch) for _ in range(2)]
        waited = time.perf_counter() - started
        liveness = await live_client.get(path("health"))  # other routes are not limited
        answers = await asyncio.gather(*admitted)
        after = await live_client.post(path("predict"), json=digit)  # places free again
    finally:
        app.dependency_overrides.clear()
    assert [a.status_code for a in answers] == [200, 200]
    assert [t.status_code for t in turned_away] == [503, 503]
    assert waited < 0.2  # answered at once, not queued behind the model
    assert turned_away[0].headers["retry-after"] == "1"
    assert turned_away[0].json()["detail"] == "busy: 2 predictions in progress here; try again shortly"
    assert liveness.status_code == 200
    assert after.status_code == 200
    assert app.state.admission.in_progress == 0
    page = await live_client.get(path("list_predictions"), params={"limit": 100})
    assert len(page.json()["items"]) == 3  # the two admitted and the one after: nothing of the shed


# --8<-- [end:admission_test]


@pytest.mark.pattern("ML02")
async def test_a_prediction_that_cannot_finish_in_time_is_a_503(
    live_client: AsyncClient, app: FastAPI, digit: dict[str, Any]
) -> None:
    from example_app.api.dependencies import get_digits_model, get_inference

    slow = SlowModel(app.state.resources.models.models[DIGITS], seconds=0.6)
    app.dependency_overrides[get_digits_model] = lambda: slow
    inference = Inference(concurrency=1, timeout=0.2)  # one worker, shared by both requests
    app.dependency_overrides[get_inference] = lambda: inference
    started = time.perf_counter()
    try:
        answers = await asyncio.gather(*(live_client.post(path("predict"), json=digit) for _ in range(2)))
    finally:
        app.dependency_overrides.clear()
    elapsed = time.perf_counter() - started
    assert [a.status_code for a in answers] == [503, 503]
    assert "no prediction within 0.2 s" in answers[0].json()["detail"]
    assert answers[0].headers["retry-after"] == "1"
    assert elapsed < 1.5  # the queued one gave up after 0.2 s; nothing waits for ever


# --8<-- [end:off_loop_test]


@pytest.mark.pattern("ML12")
async def test_every_answer_and_log_row_names_the_model(
    client: AsyncClient, app: FastAPI, db_session: AsyncSession, digit: dict[str, Any]
) -> None:
    model = app.state.resources.models.models[DIGITS]
    response = await client.post(path("predict"), json=digit)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "digits", "version": model.version, "sha256": model.sha256}
    assert body["label"] == 0
    assert len(body["probabilities"]) == 10
    assert abs(sum(body["probabilities"]) - 1) < 1e-4
    row = (
        await sql(
            db_session,
            "SELECT model_name, model_version, model_sha256 FROM predictions WHERE id = :id",
            id=body["id"],
        )
    ).one()
    assert tuple(row) == ("digits", model.version, model.sha256)


@pytest.mark.pattern("ML12", "ML10")
async def test_models_endpoint_lists_the_loaded_manifest(client: AsyncClient) -> None:
    response = await client.get(path("list_models"))
    assert response.status_code == 200
    (info,) = response.json()
    manifest = json.loads((DIGITS_MODEL_DIR / "manifest.json").read_text())
    assert info["loaded"] is True
    assert info["manifest"]["sha256"] == manifest["sha256"]
    assert info["manifest"]["metrics"]["accuracy"] == manifest["metrics"]["accuracy"]
