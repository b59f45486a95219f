"""Model versions and aliases (LC01), their request contracts (LC07), switching without a restart (LC02).

The registry's rows are committed (the app reads them on its own connections); the `register`
fixture deletes what a test registered. Switching tests run an app of their own that serves
an alias of its own (MODEL_ALIAS), so the suite's app keeps serving `production`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import APP_DIR, Settings
from example_app.core.security import create_access_token
from example_app.ml.artifact import (
    DIGITS_MODEL_DIR,
    MANIFEST_NAME,
    LoadedModel,
    Manifest,
    ModelLoadError,
    Prediction,
)
from example_app.ml.inference import Inference
from example_app.resources import listener_connect
from example_app.services.alias_watcher import AliasWatcher
from example_app.services.errors import ConflictError
from example_app.services.model_registry import DIGITS, ModelRegistry, load_checked
from example_app.services.model_version import VersionRow, register_version, set_alias
from example_app.services.registry_commands import CommandError, move_alias, register_folder
from tests.ml.artifacts import copy_of_digits, tiny_blocks_model
from tests.ml.conftest import Register
from tests.support import ROOT, AppFactory, Caller, ClientFactory, bearer, http_client, path, sql

COMMITTED = Manifest.model_validate_json((DIGITS_MODEL_DIR / MANIFEST_NAME).read_bytes())
DEFAULT_ROOT = APP_DIR / "ml" / "artifacts"


async def until(condition: Callable[[], bool], seconds: float) -> float:
    """Wait for `condition`; the seconds it took (fails after `seconds`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def point(engine: AsyncEngine, alias: str, version: str) -> None:
    """Move `alias` of digits, committed, as `tasks.py model-alias` does (the trigger NOTIFYs)."""
    async with AsyncSession(engine) as db:
        await set_alias(db, DIGITS, alias, version)


@pytest.fixture
async def blocks_dir(tmp_path: Path, register: Register) -> Path:
    """digits 2.0.0: another contract (16 block sums in 0..64), registered, no alias."""
    folder = tmp_path / "digits-2.0.0"
    tiny_blocks_model(folder, "2.0.0")
    await register(folder)
    return folder


@pytest.fixture
async def own_app(
    tmp_path: Path, make_app: AppFactory, register: Register, engine: AsyncEngine, password_hash: str
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app serving the alias `rollout`, first on digits 1.0.1 (a copy of the committed
    artifact), allowed to load from tmp_path; it hears a switch only by NOTIFY (poll: an hour).
    Its client has no test session: concurrent requests commit on the app's own connections,
    as deployed, as a user committed for the test (deleted after, with what it predicted)."""
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    await register(tmp_path / "digits-1.0.1", "rollout")
    app = await make_app(
        MODEL_ALIAS="rollout",
        MODEL_ROOTS=[DEFAULT_ROOT, tmp_path],
        MODEL_POLL_SECONDS=3600,
        PREDICTION_MAX_IN_PROGRESS=4,  # a request held in flight leaves room for the next
    )
    async with engine.begin() as conn:
        user_id = (
            await conn.execute(
                text(
                    "INSERT INTO users (email, name, hashed_password) "
                    "VALUES ('rollout@example.com', 'R', :h) RETURNING id"
                ),
                {"h": password_hash},
            )
        ).scalar_one()
        last_prediction = (
            await conn.execute(text("SELECT coalesce(max(id), 0) FROM predictions"))
        ).scalar_one()
    try:
        async with http_client(app) as client:
            client.headers.update(bearer(create_access_token(app.state.settings, user_id)))
            await until(lambda: app.state.resources.model_watcher.listening, 10)
            yield app, client
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM predictions WHERE id > :last"), {"last": last_prediction})
            await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})


@pytest.fixture
async def versions_client(
    tmp_path: Path, make_app: AppFactory, make_client: ClientFactory, caller: Caller
) -> AsyncClient:
    """The suite's client on an app that may also load artifacts from tmp_path."""
    client = await make_client(await make_app(MODEL_ROOTS=[DEFAULT_ROOT, tmp_path]))
    client.headers.update(caller.headers)
    return client


def blocks_row(value: float = 40.0) -> dict[str, Any]:
    return {"pixels": [value] * 16}


# --8<-- [start:registry_tests]
@pytest.mark.pattern("LC01")
async def test_the_migration_registers_the_committed_artifact_as_production(db_session: AsyncSession) -> None:
    version = (await sql(db_session, "SELECT * FROM model_versions WHERE name = 'digits'")).mappings().one()
    alias = (await sql(db_session, "SELECT * FROM model_aliases WHERE alias = 'production'")).mappings().one()
    assert (version["version"], version["sha256"]) == (COMMITTED.version, COMMITTED.sha256)
    assert (ROOT / version["artifact_path"]).resolve() == DIGITS_MODEL_DIR
    assert version["metrics"] == COMMITTED.metrics.model_dump()
    assert (alias["name"], alias["version"]) == ("digits", COMMITTED.version)


@pytest.mark.pattern("LC01", "LC07")
async def test_two_versions_answer_by_alias_and_by_version(
    versions_client: AsyncClient, db_session: AsyncSession, blocks_dir: Path, digit: dict[str, Any]
) -> None:
    by_alias = await versions_client.post(path("predict"), json=digit)
    by_number = await versions_client.post(path("predict"), params={"version": "1.0.0"}, json=digit)
    second = await versions_client.post(path("predict"), params={"version": "2.0.0"}, json=blocks_row())
    batch = await versions_client.post(
        path("predict_batch"), params={"version": "2.0.0"}, json={"rows": [blocks_row()] * 3}
    )
    assert [r.status_code for r in (by_alias, by_number, second, batch)] == [200] * 4, second.text
    assert by_alias.json()["model"]["version"] == by_number.json()["model"]["version"] == "1.0.0"
    assert second.json()["model"]["version"] == batch.json()["model"]["version"] == "2.0.0"
    logged = (await sql(db_session, "SELECT model_version, model_sha256 FROM predictions ORDER BY id")).all()
    blocks_sha = Manifest.model_validate_json((blocks_dir / MANIFEST_NAME).read_bytes()).sha256
    assert [tuple(row) for row in logged] == [("1.0.0", COMMITTED.sha256)] * 2 + [("2.0.0", blocks_sha)] * 4


@pytest.mark.pattern("LC01")
async def test_an_unknown_or_malformed_version_is_refused_in_one_line(
    client: AsyncClient, digit: dict[str, Any]
) -> None:
    unknown = await client.post(path("predict"), params={"version": "9.9.9"}, json=digit)
    malformed = await client.post(path("predict"), params={"version": "../../etc"}, json=digit)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "model 'digits' has no version 9.9.9 (registered: 1.0.0)"
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["query", "version"]


@pytest.mark.pattern("LC01")
async def test_a_registered_path_outside_the_allowed_roots_is_never_loaded(
    tmp_path: Path, register: Register, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    copy_of_digits(tmp_path / "elsewhere", "1.0.7")
    await register(tmp_path / "elsewhere")  # a row may say anything: the app decides what it opens
    row = VersionRow(DIGITS, "1.0.7", str(tmp_path / "elsewhere"), COMMITTED.sha256)
    with pytest.raises(ModelLoadError, match="outside MODEL_ROOTS"):
        load_checked(row, [DEFAULT_ROOT])
    inside = DEFAULT_ROOT / f"link-to-elsewhere-{os.getpid()}"
    inside.symlink_to(tmp_path / "elsewhere")  # a link inside the root does not lead out of it
    try:
        with pytest.raises(ModelLoadError, match="outside MODEL_ROOTS"):
            load_checked(replace(row, artifact_path=str(inside)), [DEFAULT_ROOT])
    finally:
        inside.unlink()
    response = await client.post(path("predict"), params={"version": "1.0.7"}, json={"pixels": [1.0] * 64})
    assert response.status_code == 503
    assert str(tmp_path) not in response.text  # the path is in the server's log, not the answer
    assert any("outside MODEL_ROOTS" in r.getMessage() for r in caplog.records)


@pytest.mark.pattern("LC01")
async def test_a_version_that_failed_to_load_is_not_loaded_again_until_its_row_changes_or_time_passes(
    tmp_path: Path,
    register: Register,
    versions_client: AsyncClient,
    engine: AsyncEngine,
    digit: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import example_app.services.model_registry as registry_module

    loads: list[str] = []

    def counted(row: VersionRow, roots: list[Path]) -> LoadedModel:
        loads.append(row.artifact_path)
        return load_checked(row, roots)

    monkeypatch.setattr(registry_module, "load_checked", counted)
    broken, good = tmp_path / "digits-1.0.8", tmp_path / "good-1.0.8"
    copy_of_digits(broken, "1.0.8")
    copy_of_digits(good, "1.0.8")
    await register(broken)
    onnx = broken / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-100])  # spoilt after it was registered

    async def predict() -> int:
        response = await versions_client.post(path("predict"), params={"version": "1.0.8"}, json=digit)
        return response.status_code

    assert [await predict() for _ in range(3)] == [503, 503, 503]
    assert loads == [str(broken)]  # tried once: the next two are answered from the failure
    monkeypatch.setattr(registry_module, "FAILED_LOAD_SECONDS", 0.0)  # the bound has passed
    assert await predict() == 503
    assert loads == [str(broken)] * 2
    monkeypatch.setattr(registry_module, "FAILED_LOAD_SECONDS", 3600.0)
    async with engine.begin() as conn:  # the row changes (repaired): tried again at once
        await conn.execute(
            text("UPDATE model_versions SET artifact_path = :p WHERE name = 'digits' AND version = '1.0.8'"),
            {"p": str(good)},
        )
    assert await predict() == 200
    assert loads == [str(broken)] * 2 + [str(good)]


@pytest.mark.pattern("LC01")
async def test_an_artifact_is_loaded_only_with_its_registered_checksum(tmp_path: Path) -> None:
    folder = tmp_path / "digits"
    copy_of_digits(folder, "1.0.0")
    good = VersionRow(DIGITS, "1.0.0", str(folder), COMMITTED.sha256)
    assert load_checked(good, [tmp_path]).sha256 == COMMITTED.sha256
    other = VersionRow(DIGITS, "1.0.0", str(folder), "0" * 64)  # the row and the files disagree
    with pytest.raises(ModelLoadError, match="the registry expects 000000000000"):
        load_checked(other, [tmp_path])
    wrong_name = VersionRow(DIGITS, "1.0.1", str(folder), COMMITTED.sha256)
    with pytest.raises(ModelLoadError, match=r"the manifest in .* is digits 1\.0\.0"):
        load_checked(wrong_name, [tmp_path])


@pytest.mark.pattern("LC01")
async def test_a_version_never_changes_once_registered(db_session: AsyncSession, tmp_path: Path) -> None:
    folder = tmp_path / "digits-2.0.0"
    manifest = tiny_blocks_model(folder, "1.0.0")  # the number of the committed one, other bytes
    with pytest.raises(ConflictError, match=r"digits 1\.0\.0 is registered with sha256 52728839d246"):
        await register_version(db_session, manifest, folder)
    assert await register_version(db_session, COMMITTED, DIGITS_MODEL_DIR) is False  # the same: no-op


# --8<-- [end:registry_tests]


# --8<-- [start:command_tests]
@pytest.mark.pattern("LC01")
async def test_the_commands_register_and_move_an_alias_with_one_line_errors(
    settings: Settings, tmp_path: Path, engine: AsyncEngine
) -> None:
    folder = tmp_path / "digits-2.0.0"
    tiny_blocks_model(folder, "2.0.0")
    try:
        assert (await register_folder(settings, folder)).startswith(
            f"digits 2.0.0 registered ({folder}, sha256 "
        )
        assert (await register_folder(settings, folder)).startswith("digits 2.0.0 already registered")
        moved = await move_alias(settings, DIGITS, "candidate", "2.0.0")
        assert moved.startswith("digits candidate -> 2.0.0; ")
        assert (await move_alias(settings, DIGITS, "candidate", "1.0.0")).startswith(
            "digits candidate -> 1.0.0 (was 2.0.0)"
        )
        with pytest.raises(CommandError) as unknown:
            await move_alias(settings, DIGITS, "production", "9.9.9")
        assert str(unknown.value) == "digits 9.9.9 is not registered (registered: 1.0.0, 2.0.0)"
        nowhere = settings.model_copy(
            update={"DATABASE_URL": "postgresql+asyncpg://nobody:pw@127.0.0.1:9/none"}
        )
        with pytest.raises(CommandError) as unreachable:
            await move_alias(nowhere, DIGITS, "production", "1.0.0")
        assert unreachable.value.unreachable
        assert str(unreachable.value) == "cannot reach the database (ConnectionRefusedError)"
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM model_aliases WHERE alias = 'candidate'"))
            await conn.execute(text("DELETE FROM model_versions WHERE version = '2.0.0'"))


@pytest.mark.pattern("LC01")
def test_model_alias_task_names_an_unknown_version_in_one_line(database_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "tasks.py",
            "model-alias",
            "--name",
            "digits",
            "--alias",
            "production",
            "--version",
            "9.9.9",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "POSTGRES_PROVIDER": "url"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()[-1]
        == "model-alias: digits 9.9.9 is not registered (registered: 1.0.0)"
    )


# --8<-- [end:command_tests]


# --8<-- [start:contract_tests]
@pytest.mark.pattern("LC07")
async def test_each_version_checks_requests_against_its_own_contract(
    versions_client: AsyncClient, blocks_dir: Path, digit: dict[str, Any]
) -> None:
    cases = [
        ("1.0.0", {"pixels": [1.0] * 16}, ["body", "pixels"], "at least 64 items"),
        ("1.0.0", {"pixels": [40.0] * 64}, ["body", "pixels", 0], "less than or equal to 16"),
        ("2.0.0", digit, ["body", "pixels"], "at most 16 items"),
        ("2.0.0", {"pixels": [65.0] * 16}, ["body", "pixels", 0], "less than or equal to 64"),
        ("2.0.0", {"pixels": [-1.0] * 16}, ["body", "pixels", 0], "greater than or equal to 0"),
    ]
    for version, body, loc, message in cases:
        response = await versions_client.post(path("predict"), params={"version": version}, json=body)
        assert response.status_code == 422, (version, response.text)
        first = response.json()["detail"][0]
        assert (first["loc"], message in first["msg"]) == (loc, True), (version, first)
    batch = await versions_client.post(
        path("predict_batch"),
        params={"version": "2.0.0"},
        json={"rows": [blocks_row(), {"pixels": [99.0] * 16}]},
    )
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "rows", 1, "pixels", 0]
    assert (
        await versions_client.post(path("predict"), params={"version": "2.0.0"}, json=blocks_row(64))
    ).status_code == 200


@pytest.mark.pattern("LC07")
async def test_openapi_shows_the_contract_of_the_version_the_alias_serves(
    client: AsyncClient, own_app: tuple[FastAPI, AsyncClient], blocks_dir: Path, engine: AsyncEngine
) -> None:
    def pixels(document: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = document["components"]["schemas"]["PredictionInput"]["properties"]["pixels"]
        return schema

    served = pixels((await client.get("/openapi.json")).json())
    assert (served["minItems"], served["maxItems"], served["items"]["maximum"]) == (64, 64, 16)
    assert "digits 1.0.0" in served["description"]
    app, own = own_app
    await point(engine, "rollout", "2.0.0")
    await until(lambda: app.state.resources.models.models[DIGITS].version == "2.0.0", 10)
    switched = pixels((await own.get("/openapi.json")).json())
    assert (switched["minItems"], switched["maxItems"], switched["items"]["maximum"]) == (16, 16, 64)
    assert "digits 2.0.0" in switched["description"]
    version = (await own.get("/openapi.json")).json()["paths"][path("predict")]["post"]["parameters"]
    assert [p["name"] for p in version if p["in"] == "query"] == ["version"]


# --8<-- [end:contract_tests]


class SlowInference(Inference):
    """The app's inference, each call held `seconds` first: a request in flight for a while."""

    def __init__(self, seconds: float) -> None:
        super().__init__(concurrency=2, timeout=10)
        self.seconds = seconds
        self.started = asyncio.Event()

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        self.started.set()
        await asyncio.sleep(self.seconds)
        return await super().predict(model, rows)


# --8<-- [start:switch_tests]
@pytest.mark.pattern("LC02")
async def test_a_notify_switches_the_alias_and_requests_in_flight_finish_on_their_version(
    own_app: tuple[FastAPI, AsyncClient], blocks_dir: Path, engine: AsyncEngine, digit: dict[str, Any]
) -> None:
    from example_app.api.dependencies import get_inference

    app, client = own_app
    slow = SlowInference(0.5)
    app.dependency_overrides[get_inference] = lambda: slow
    in_flight = asyncio.create_task(client.post(path("predict"), json=digit))
    await slow.started.wait()  # it has resolved 1.0.1 and is predicting
    await point(engine, "rollout", "2.0.0")  # committed: the trigger NOTIFYs; the poll is an hour away
    took = await until(lambda: app.state.resources.models.models[DIGITS].version == "2.0.0", 5)
    after = await client.post(path("predict"), json=blocks_row())
    answered = await in_flight
    assert answered.status_code == 200
    assert answered.json()["model"]["version"] == "1.0.1"
    assert after.status_code == 200
    assert after.json()["model"]["version"] == "2.0.0"
    assert took < 2  # a notification, not the poll


@pytest.mark.pattern("LC02")
async def test_a_version_that_fails_to_load_leaves_the_old_one_serving_and_readiness_says_why(
    own_app: tuple[FastAPI, AsyncClient],
    tmp_path: Path,
    register: Register,
    engine: AsyncEngine,
    digit: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = own_app
    broken = tmp_path / "digits-1.0.2"
    copy_of_digits(broken, "1.0.2")
    await register(broken)
    onnx = broken / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-100])  # spoilt after it was registered
    await point(engine, "rollout", "1.0.2")
    registry: ModelRegistry = app.state.resources.models
    await until(lambda: DIGITS in registry.warnings, 5)
    ready = await client.get(path("ready"))
    predicted = await client.post(path("predict"), json=digit)
    assert ready.status_code == 200, ready.text  # 1.0.1 still serves: not a reason to stop traffic
    assert ready.json()["warnings"][DIGITS].startswith(
        "rollout -> 1.0.2 not loaded, 1.0.1 serves: model checksum"
    )
    assert predicted.json()["model"]["version"] == "1.0.1"
    await point(engine, "rollout", "1.0.1")  # rolled back: the warning goes
    await until(lambda: DIGITS not in registry.warnings, 5)
    assert (await client.get(path("ready"))).json()["warnings"] == {}
    assert sum("not switched" in r.getMessage() for r in caplog.records) == 1  # logged once


@pytest.mark.pattern("LC02")
async def test_the_poll_switches_when_no_notification_arrives(
    app: FastAPI,
    settings: Settings,
    tmp_path: Path,
    register: Register,
    blocks_dir: Path,
    engine: AsyncEngine,
) -> None:
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    await register(tmp_path / "digits-1.0.1", "polled")
    registry = ModelRegistry(app.state.resources.sessions, [tmp_path], alias="polled")
    watcher = AliasWatcher(registry, None, poll_seconds=0.3)  # no LISTEN, as behind PgBouncer
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: DIGITS in registry.models, 5)
        await point(engine, "polled", "2.0.0")
        took = await until(lambda: registry.models[DIGITS].version == "2.0.0", 5)
        assert took < 1.5
        assert not watcher.listening
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.pattern("LC02")
async def test_the_listener_reconnects_and_rereads_after_its_connection_dies(
    app: FastAPI,
    settings: Settings,
    tmp_path: Path,
    register: Register,
    blocks_dir: Path,
    engine: AsyncEngine,
) -> None:
    copy_of_digits(tmp_path / "digits-1.0.1", "1.0.1")
    await register(tmp_path / "digits-1.0.1", "relisten")
    registry = ModelRegistry(app.state.resources.sessions, [tmp_path], alias="relisten")
    watcher = AliasWatcher(
        registry, listener_connect(app.state.resources.engine, settings), poll_seconds=3600
    )
    task = asyncio.create_task(watcher.run())
    listeners = "SELECT pid FROM pg_stat_activity WHERE application_name LIKE '% model listener'"
    try:
        await until(lambda: watcher.listening and DIGITS in registry.models, 10)
        async with engine.begin() as conn:
            before = set((await conn.execute(text(listeners))).scalars())
            await conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({listeners}) AS l"))
        await point(engine, "relisten", "2.0.0")  # while it reconnects: only the re-read finds it
        await until(lambda: registry.models[DIGITS].version == "2.0.0", 10)
        await until(lambda: watcher.listening, 10)
        async with engine.connect() as conn:
            after = set((await conn.execute(text(listeners))).scalars())
        assert before
        assert after
        assert not before & after
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --8<-- [end:switch_tests]
