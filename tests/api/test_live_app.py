"""The app as deployed (its own engine and pool, real commits), under concurrent load."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from example_app.services import errors
from example_app.services import user as user_service
from tests.support import SlowHasher, bearer, log_in, path


@pytest.fixture
def integrity_errors(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Records each time a create reached the unique index (i.e. lost the race)."""
    seen: list[str | None] = []
    original = errors.violated_constraint

    def spy(error: object) -> str | None:
        name = original(error)  # type: ignore[arg-type]
        seen.append(name)
        return name

    monkeypatch.setattr(user_service, "violated_constraint", spy)
    return seen


# --8<-- [start:test_concurrent_duplicates]
@pytest.mark.pattern("E05", "R04")
async def test_concurrent_duplicate_emails_give_one_201_and_409s(
    live_client: AsyncClient,
    app: FastAPI,
    integrity_errors: list[str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = app.state.resources.passwords  # a hash takes time, as Argon2 does: the race's window
    monkeypatch.setattr(passwords, "hasher", SlowHasher(passwords.hasher))
    body = {"email": "race@example.com", "password": "long enough", "name": "Racer"}
    responses = await asyncio.gather(*(live_client.post(path("create_user"), json=body) for _ in range(16)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 15}  # never a 500
    # The race really happened: some requests passed the pre-check and met the unique index.
    assert integrity_errors
    assert set(integrity_errors) == {"ix_users_email"}


# --8<-- [end:test_concurrent_duplicates]


@pytest.mark.pattern("D05")
async def test_no_connection_is_left_idle_in_transaction(
    live_client: AsyncClient, engine: AsyncEngine
) -> None:
    created = await live_client.post(
        path("create_user"), json={"email": "tx@example.com", "password": "long enough", "name": "Tx"}
    )
    user_id = created.json()["id"]
    me = bearer((await log_in(live_client, "tx@example.com", "long enough")).json()["access_token"])
    for response in await asyncio.gather(
        live_client.get(path("get_user", user_id=user_id), headers=me),
        live_client.get(path("get_user", user_id=424242), headers=me),  # 404 path
        live_client.post(
            path("create_user"), json={"email": "tx@example.com", "password": "long enough", "name": "T"}
        ),
        live_client.patch(path("update_user", user_id=user_id), json={"name": None}, headers=me),  # 422
        live_client.post(path("create_post"), json={"title": "t", "body": "b"}, headers=me),
        live_client.get(path("list_users"), headers=me),  # 403 path
        live_client.get(path("get_user", user_id=user_id), headers=bearer("forged")),  # 401 path
        log_in(live_client, "tx@example.com", "wrong password"),  # a hash, then 401
    ):
        assert response.status_code < 500
    async with engine.connect() as conn:
        stuck = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            )
        )
    assert stuck == 0


@pytest.mark.pattern("D07", "E30")
async def test_concurrency_above_the_pool_size_queues_instead_of_failing(
    live_client: AsyncClient, app: FastAPI
) -> None:
    settings = app.state.settings
    capacity = settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW
    created = await live_client.post(
        path("create_user"), json={"email": "pool@example.com", "password": "long enough", "name": "P"}
    )
    url = path("get_user", user_id=created.json()["id"])
    me = bearer((await log_in(live_client, "pool@example.com", "long enough")).json()["access_token"])
    responses = await asyncio.gather(*(live_client.get(url, headers=me) for _ in range(capacity * 3)))
    assert {r.status_code for r in responses} == {200}
    assert app.state.resources.engine.pool.checkedout() == 0  # nothing leaked


# --8<-- [start:test_concurrent_deletes]
async def a_post_and_its_author(client: AsyncClient) -> tuple[str, dict[str, str]]:
    body = {"email": "author@example.com", "password": "long enough", "name": "Author"}
    assert (await client.post(path("create_user"), json=body)).status_code == 201
    me = bearer((await log_in(client, body["email"], body["password"])).json()["access_token"])
    post = await client.post(path("create_post"), json={"title": "t", "body": "b"}, headers=me)
    assert post.status_code == 201
    return path("delete_post", post_id=post.json()["id"]), me


@pytest.mark.pattern("SV03")
async def test_eight_concurrent_deletes_of_a_post_give_one_204_and_404s(live_client: AsyncClient) -> None:
    """Each request on its own connection and transaction, at once: the row is deleted once, and
    only the request that deleted it says so."""
    url, me = await a_post_and_its_author(live_client)
    responses = await asyncio.gather(*(live_client.delete(url, headers=me) for _ in range(8)))
    assert Counter(r.status_code for r in responses) == {204: 1, 404: 7}


@pytest.mark.pattern("SV03")
async def test_edits_racing_a_delete_answer_200_or_404_never_500(live_client: AsyncClient) -> None:
    url, me = await a_post_and_its_author(live_client)
    edits = [live_client.patch(url, json={"body": f"edit {n}"}, headers=me) for n in range(6)]
    responses = await asyncio.gather(live_client.delete(url, headers=me), *edits)
    assert responses[0].status_code == 204
    assert {r.status_code for r in responses[1:]} <= {200, 404}


# --8<-- [end:test_concurrent_deletes]
