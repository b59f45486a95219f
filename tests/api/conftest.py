"""Fixtures for HTTP-level tests."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.support import UserFactory, path


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
