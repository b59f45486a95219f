"""Fixtures for the serving tests: a digit from the dataset the model learnt, as a request body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import DIGITS_MODEL_DIR, MANIFEST_NAME, Manifest
from example_app.services.model_version import register_version, set_alias
from tests.support import PASSWORD, Caller, bearer, log_in, path


@pytest.fixture
def digit() -> dict[str, Any]:
    """Row 0 of scikit-learn's load_digits (a zero): the example request the quick start sends."""
    body: dict[str, Any] = json.loads((DIGITS_MODEL_DIR / "example-request.json").read_text())
    return body


# Every ML route takes an active user's token (the Security page): these tests call them signed in.
@pytest.fixture
def client(client: AsyncClient, caller: Caller) -> AsyncClient:
    """The suite's client, sending an active user's token with every request."""
    client.headers.update(caller.headers)
    return client


@pytest.fixture
async def live_client(live_client: AsyncClient) -> AsyncClient:
    """The app as deployed, signed in as a user it committed (the tables are emptied after)."""
    body = {"email": "ml@example.com", "password": PASSWORD, "name": "ML"}
    assert (await live_client.post(path("create_user"), json=body)).status_code == 201
    token = await log_in(live_client, body["email"])
    live_client.headers.update(bearer(token.json()["access_token"]))
    return live_client


class Register(Protocol):
    async def __call__(self, folder: Path, *aliases: str) -> Manifest: ...


@pytest.fixture
async def register(engine: AsyncEngine) -> AsyncIterator[Register]:
    """Register the artifact in `folder` (committed, as `tasks.py train` does) and point `aliases`
    at it; every row it made is deleted after the test (the seeded digits 1.0.0 stays)."""
    made: list[tuple[str, str, tuple[str, ...]]] = []

    async def register(folder: Path, *aliases: str) -> Manifest:
        manifest = Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
        async with AsyncSession(engine, expire_on_commit=False) as db:
            await register_version(db, manifest, folder)
            made.append((manifest.name, manifest.version, aliases))
            for alias in aliases:
                await set_alias(db, manifest.name, alias, manifest.version)
        return manifest

    yield register
    async with engine.begin() as conn:  # aliases first: they point at the versions
        for name, _, aliases in made:
            for alias in aliases:
                await conn.execute(
                    text("DELETE FROM model_aliases WHERE name = :n AND alias = :a"), {"n": name, "a": alias}
                )
        for name, version, _ in made:
            await conn.execute(
                text("DELETE FROM model_versions WHERE name = :n AND version = :v AND version <> '1.0.0'"),
                {"n": name, "v": version},
            )
