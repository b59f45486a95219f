"""/api/v1/posts over HTTP: the guide's second resource, with its foreign key and relationship."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support import Caller, CallerFactory, path, sql


# --8<-- [start:post_tests]
async def make_post(client: AsyncClient, author: Caller, **fields: Any) -> dict[str, Any]:
    body = {"title": "Hello, World!", "body": "First post.", **fields}
    response = await client.post(path("create_post"), json=body, headers=author.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.pattern("T05", "W07")
async def test_create_post(client: AsyncClient, caller: Caller) -> None:
    post = await make_post(client, caller, tags=["ml", "db"])
    assert post["author_id"] == caller.id  # the author is whoever sent the token
    assert post["slug"] == "hello-world"
    assert post["tags"] == ["ml", "db"]


@pytest.mark.pattern("M06", "E02")
async def test_post_detail_embeds_its_author(client: AsyncClient, make_caller: CallerFactory) -> None:
    author = await make_caller(name="Grace")
    post = await make_post(client, author)
    detail = (await client.get(path("get_post", post_id=post["id"]))).json()  # public: no token
    assert detail["author"] == {"id": author.id, "name": "Grace"}  # no email: accounts are private


@pytest.mark.pattern("AU03")
async def test_an_author_id_in_the_body_is_refused_and_nothing_is_written(
    client: AsyncClient, caller: Caller, db_session: AsyncSession
) -> None:
    body = {"title": "t", "body": "b", "author_id": 987654}
    response = await client.post(path("create_post"), json=body, headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "author_id"]
    assert (await sql(db_session, "SELECT count(*) FROM posts")).scalar_one() == 0


# --8<-- [end:post_tests]


async def test_posts_of_an_author(client: AsyncClient, make_caller: CallerFactory) -> None:
    alice, bob = await make_caller(), await make_caller()
    mine = [await make_post(client, alice, title=f"Alice {i}") for i in range(3)]
    await make_post(client, bob)
    listed = (await client.get(path("list_user_posts", user_id=alice.id))).json()
    assert [p["id"] for p in listed] == [p["id"] for p in reversed(mine)]  # newest first
    # An id without an account answers like an account without posts: the public listing does
    # not tell which ids have accounts (see AU03).
    missing = await client.get(path("list_user_posts", user_id=999_999))
    assert missing.status_code == 200
    assert missing.json() == []


async def test_deleting_a_user_deletes_their_posts(client: AsyncClient, caller: Caller) -> None:
    post = await make_post(client, caller)
    assert (
        await client.delete(path("delete_user", user_id=caller.id), headers=caller.headers)
    ).status_code == 204
    assert (await client.get(path("get_post", post_id=post["id"]))).status_code == 404


async def test_patch_post_renames_its_slug(client: AsyncClient, caller: Caller) -> None:
    post = await make_post(client, caller)
    patched = await client.patch(
        path("update_post", post_id=post["id"]), json={"title": "Second Thoughts"}, headers=caller.headers
    )
    assert patched.status_code == 200
    assert patched.json()["slug"] == "second-thoughts"
    assert patched.json()["body"] == post["body"]
    assert patched.json()["updated_at"] > post["updated_at"]


@pytest.mark.pattern("E07", "E08", "D04")
@pytest.mark.parametrize(
    "body",
    [
        {"title": None},
        {"body": None},
        {"tags": None},
        {"title": "x" * 256},
        {"tags": ["t"] * 21},
        {"author_id": 1},
    ],
)
async def test_bad_patch_is_422(client: AsyncClient, caller: Caller, body: dict[str, object]) -> None:
    post = await make_post(client, caller)
    response = await client.patch(path("update_post", post_id=post["id"]), json=body, headers=caller.headers)
    assert response.status_code == 422
    unchanged = (await client.get(path("get_post", post_id=post["id"]))).json()
    assert unchanged["title"] == post["title"]


@pytest.mark.pattern("E08", "SC01")
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 256}, "title"),
        ({"body": ""}, "body"),
        ({"author_id": 0}, "author_id"),
    ],
)
async def test_bad_create_is_422(
    client: AsyncClient,
    caller: Caller,
    db_session: AsyncSession,
    change: dict[str, object],
    field: str,
) -> None:
    body = {"title": "t", "body": "b", **change}
    response = await client.post(path("create_post"), json=body, headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await sql(db_session, "SELECT count(*) FROM posts")).scalar_one() == 0


async def test_delete_post(client: AsyncClient, caller: Caller) -> None:
    post = await make_post(client, caller)
    url = path("delete_post", post_id=post["id"])
    assert (await client.delete(url, headers=caller.headers)).status_code == 204
    assert (await client.delete(url, headers=caller.headers)).json()[
        "detail"
    ] == f"Post {post['id']} not found"
    assert (await client.get(path("get_user", user_id=caller.id), headers=caller.headers)).status_code == 200


@pytest.mark.pattern("R02")
async def test_post_pages_do_not_overlap(client: AsyncClient, caller: Caller) -> None:
    ids = {(await make_post(client, caller, title=f"p{i}"))["id"] for i in range(7)}
    seen: list[int] = []
    for skip in range(0, 8, 3):
        page = (await client.get(path("list_posts"), params={"skip": skip, "limit": 3})).json()
        seen += [p["id"] for p in page]
    assert sorted(seen) == sorted(ids)  # every row exactly once, across pages
