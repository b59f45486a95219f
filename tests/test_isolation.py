"""Each test runs in a transaction that is rolled back, even when the code under test commits."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support import bearer, path, sql

EMAIL = "isolation@example.com"


# --8<-- [start:isolation_tests]
# The two tests below run in file order: the second proves the first left nothing behind.
@pytest.mark.pattern("T01", "E26", "E25")
async def test_a_committed_write_inside_a_test(client: AsyncClient, db_session: AsyncSession) -> None:
    response = await client.post(
        path("create_user"), json={"email": EMAIL, "password": "long enough", "name": "Iso"}
    )
    assert response.status_code == 201  # the service committed (a savepoint, in truth)
    count = await sql(db_session, "SELECT count(*) FROM users WHERE email = :e", e=EMAIL)
    assert count.scalar_one() == 1


@pytest.mark.pattern("T01", "E26", "T03")
async def test_the_next_test_does_not_see_it(db_session: AsyncSession, app: FastAPI) -> None:
    count = await sql(db_session, "SELECT count(*) FROM users WHERE email = :e", e=EMAIL)
    assert count.scalar_one() == 0
    assert app.dependency_overrides == {}  # the previous test's override was cleared


# --8<-- [end:isolation_tests]


@pytest.mark.pattern("D06", "T03", "S02")
async def test_the_override_routes_requests_through_the_test_session(
    client: AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    """A row the test inserted (uncommitted) is visible to the app: same session, same transaction."""
    from example_app.api.dependencies import get_db
    from example_app.core.security import create_access_token

    assert get_db in app.dependency_overrides
    inserted = await sql(
        db_session,
        "INSERT INTO users (email, hashed_password, name, is_superuser) "
        "VALUES ('seen@example.com', 'x', 'Seen', true) RETURNING id",
    )
    token = create_access_token(
        app.state.settings, inserted.scalar_one()
    )  # a superuser's: listing users takes one
    listed = (await client.get(path("list_users"), headers=bearer(token))).json()
    assert [u["email"] for u in listed] == ["seen@example.com"]


@pytest.mark.pattern("E26")
async def test_a_failed_write_does_not_poison_the_test_transaction(
    client: AsyncClient, db_session: AsyncSession
) -> None:
    """After an IntegrityError the service rolls back to its savepoint; the test goes on."""
    body = {"email": "twice@example.com", "password": "long enough", "name": "Twice"}
    assert (await client.post(path("create_user"), json=body)).status_code == 201
    assert (await client.post(path("create_user"), json=body)).status_code == 409
    count = await sql(db_session, "SELECT count(*) FROM users")
    assert count.scalar_one() == 1
