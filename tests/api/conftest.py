"""Fixtures for HTTP-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import NO_SECRETS, UserFactory, path


@pytest.fixture
def make_user(client: AsyncClient) -> UserFactory:
    counter = iter(range(1, 10_000))

    async def make(**fields: Any) -> dict[str, Any]:
        n = next(counter)
        body = {"email": f"user{n}@example.com", "password": "correct horse", "name": f"User {n}"}
        response = await client.post(path("create_user"), json={**body, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


@pytest.fixture
async def live_client(engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    """The app exactly as deployed: its own engine and pool, real commits, no overrides.

    What it writes is committed, so the tables are emptied afterwards.
    """
    from example_app.main import app

    assert not app.dependency_overrides
    try:
        async with (
            LifespanManager(app) as manager,
            AsyncClient(
                transport=ASGITransport(app=manager.app), base_url="http://live", event_hooks=NO_SECRETS
            ) as http,
        ):
            yield http
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE users, posts RESTART IDENTITY CASCADE"))
