"""Fixtures for the serving tests: a digit from the dataset the model learnt, as a request body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import AsyncClient

from example_app.ml.artifact import DIGITS_MODEL_DIR
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
