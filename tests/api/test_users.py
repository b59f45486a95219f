"""/api/v1/users over HTTP, on PostgreSQL, each test rolled back."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.security import verify_password
from tests.support import Caller, CallerFactory, path, sql

NEW_USER = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}


# --8<-- [start:test_create_user]
@pytest.mark.pattern("T05", "R04", "R01", "W07", "E11")
async def test_create_user(client: AsyncClient) -> None:
    response = await client.post(path("create_user"), json=NEW_USER)
    assert response.request.url.path == "/api/v1/users"  # the real path: prefixes stack
    assert response.status_code == 201  # directly: no 307 redirect on the way
    data = response.json()
    assert data["email"] == "ada@example.com"
    assert data["name"] == "Ada"
    assert isinstance(data["id"], int)
    assert "password" not in data
    assert "hashed_password" not in data


@pytest.mark.pattern("T05", "R03", "E11")
async def test_get_user_not_found(client: AsyncClient, make_caller: CallerFactory) -> None:
    admin = await make_caller(superuser=True)  # reading accounts takes a token (see AU03)
    response = await client.get(path("get_user", user_id=999), headers=admin.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "User 999 not found"  # the detail, not just the code


# --8<-- [end:test_create_user]


@pytest.mark.pattern("R06", "M02", "SC03")
async def test_created_user_is_readable_back(
    client: AsyncClient, db_session: AsyncSession, make_caller: CallerFactory
) -> None:
    created = (await client.post(path("create_user"), json=NEW_USER)).json()
    row = (await sql(db_session, "SELECT email, name FROM users WHERE id = :id", id=created["id"])).one()
    assert tuple(row) == ("ada@example.com", "Ada")
    admin = await make_caller(superuser=True)
    fetched = await client.get(path("get_user", user_id=created["id"]), headers=admin.headers)
    assert fetched.json() == created


@pytest.mark.pattern("R05", "E04")
async def test_password_is_stored_as_an_argon2_hash(client: AsyncClient, db_session: AsyncSession) -> None:
    created = (await client.post(path("create_user"), json=NEW_USER)).json()
    stored = (
        await sql(db_session, "SELECT hashed_password FROM users WHERE id = :id", id=created["id"])
    ).scalar_one()
    assert stored != NEW_USER["password"]
    assert stored.startswith("$argon2id$")
    assert verify_password(NEW_USER["password"], stored)
    assert not verify_password("wrong password", stored)


@pytest.mark.pattern("R04", "E05", "E31")
async def test_duplicate_email_is_409_with_a_clear_detail(client: AsyncClient) -> None:
    assert (await client.post(path("create_user"), json=NEW_USER)).status_code == 201
    again = await client.post(path("create_user"), json={**NEW_USER, "name": "Someone else"})
    assert again.status_code == 409
    assert again.json()["detail"] == "A user with this email already exists"


@pytest.mark.pattern("E06", "M03")
async def test_email_case_does_not_make_a_second_account(client: AsyncClient) -> None:
    first = await client.post(path("create_user"), json={**NEW_USER, "email": "Mixed@Example.com"})
    assert first.status_code == 201
    assert first.json()["email"] == "mixed@example.com"
    second = await client.post(path("create_user"), json={**NEW_USER, "email": "mixed@EXAMPLE.COM"})
    assert second.status_code == 409


@pytest.mark.pattern("SC01", "D04", "E24")
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a" * 250 + "@example.com"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": 42}, "name"),
        ({"is_admin": True}, "is_admin"),
    ],
)
async def test_invalid_create_is_422_naming_the_field(
    client: AsyncClient, db_session: AsyncSession, change: dict[str, object], field: str
) -> None:
    response = await client.post(path("create_user"), json={**NEW_USER, **change})
    assert response.status_code == 422
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}
    assert (await sql(db_session, "SELECT count(*) FROM users")).scalar_one() == 0  # nothing written


@pytest.mark.pattern("SC01")
@pytest.mark.parametrize("missing", ["email", "password", "name"])
async def test_missing_field_is_422(client: AsyncClient, missing: str) -> None:
    body = {k: v for k, v in NEW_USER.items() if k != missing}
    response = await client.post(path("create_user"), json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", missing]
    assert response.json()["detail"][0]["type"] == "missing"


@pytest.mark.pattern("R07", "SC02", "E31")
async def test_patch_changes_only_the_fields_sent(client: AsyncClient, make_caller: CallerFactory) -> None:
    admin, user = await make_caller(superuser=True), (await make_caller(name="Before")).user
    response = await client.patch(
        path("update_user", user_id=user["id"]), json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["is_active"] is False
    assert updated["name"] == "Before"  # not sent, not changed
    assert updated["email"] == user["email"]


@pytest.mark.pattern("E09", "M05")
async def test_updated_at_moves_on_update_and_created_at_does_not(
    client: AsyncClient, caller: Caller
) -> None:
    user = caller.user
    url = path("update_user", user_id=user["id"])
    updated = (await client.patch(url, json={"name": "New"}, headers=caller.headers)).json()
    assert updated["updated_at"] > user["updated_at"]
    assert updated["created_at"] == user["created_at"]
    assert updated["updated_at"].endswith("Z") or "+00:00" in updated["updated_at"]  # aware UTC


@pytest.mark.pattern("E07", "D04", "R07")
@pytest.mark.parametrize("body", [{"name": None}, {"is_active": None}, {"name": None, "is_active": True}])
async def test_explicit_null_in_patch_is_422_not_500(
    client: AsyncClient, make_caller: CallerFactory, body: dict[str, object]
) -> None:
    me = await make_caller(name="Kept")
    user = me.user
    response = await client.patch(path("update_user", user_id=user["id"]), json=body, headers=me.headers)
    assert response.status_code == 422
    assert "cannot be null; leave the field out instead" in response.text
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", k) for k, v in body.items() if v is None
    }
    assert (await client.get(path("get_user", user_id=user["id"]), headers=me.headers)).json()[
        "name"
    ] == "Kept"


@pytest.mark.pattern("D04", "E08")
async def test_patch_validates_like_create(client: AsyncClient, caller: Caller) -> None:
    url = path("update_user", user_id=caller.id)
    too_long = await client.patch(url, json={"name": "n" * 101}, headers=caller.headers)
    assert too_long.status_code == 422
    unknown = await client.patch(url, json={"email": "x@example.com"}, headers=caller.headers)
    assert unknown.status_code == 422  # email is not updatable here: extra fields are refused


@pytest.mark.pattern("R07")
async def test_patch_unknown_user_is_404(client: AsyncClient, make_caller: CallerFactory) -> None:
    admin = await make_caller(superuser=True)
    response = await client.patch(
        path("update_user", user_id=4242), json={"name": "Nobody"}, headers=admin.headers
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "User 4242 not found"


async def test_delete_user_then_it_is_gone(client: AsyncClient, make_caller: CallerFactory) -> None:
    admin, user = await make_caller(superuser=True), (await make_caller()).user
    deleted = await client.delete(path("delete_user", user_id=user["id"]), headers=admin.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(path("get_user", user_id=user["id"]), headers=admin.headers)).status_code == 404
    again = await client.delete(path("delete_user", user_id=user["id"]), headers=admin.headers)
    assert again.status_code == 404


@pytest.mark.pattern("R02", "E15")
async def test_list_is_ordered_and_paged(client: AsyncClient, make_caller: CallerFactory) -> None:
    admin = await make_caller(superuser=True)
    ids = [admin.id] + [(await make_caller()).id for _ in range(4)]
    pages = [
        (
            await client.get(path("list_users"), params={"skip": skip, "limit": 2}, headers=admin.headers)
        ).json()
        for skip in (0, 2, 4)
    ]
    assert [u["id"] for page in pages for u in page] == sorted(ids)


@pytest.mark.pattern("R02", "E15")
@pytest.mark.parametrize(
    "params",
    [{"limit": -1}, {"limit": 0}, {"limit": 10_000}, {"skip": -1}, {"limit": "ten"}, {"skip": 2**31}],
)
async def test_list_rejects_bad_paging_with_422(
    client: AsyncClient, make_caller: CallerFactory, params: dict[str, Any]
) -> None:
    admin = await make_caller(superuser=True)
    response = await client.get(path("list_users"), params=params, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.pattern("R03", "E15")
@pytest.mark.parametrize("user_id", ["abc", "0", "-5", str(2**31), "1.5"])
async def test_bad_ids_are_422_not_500(client: AsyncClient, caller: Caller, user_id: str) -> None:
    response = await client.get(f"{path('list_users')}/{user_id}", headers=caller.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


@pytest.mark.pattern("E11")
async def test_trailing_slash_policy(client: AsyncClient) -> None:
    """Canonical paths have no trailing slash; the slash form only redirects there."""
    response = await client.get(path("list_users") + "/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/api/v1/users")


@pytest.mark.pattern("E12", "W06", "R01")
def test_routes_are_where_the_openapi_schema_says() -> None:
    from example_app.main import app

    paths = set(app.openapi()["paths"])
    assert {"/api/v1/users", "/api/v1/users/{user_id}", "/api/v1/users/{user_id}/posts"} <= paths
    assert {"/api/v1/posts", "/api/v1/posts/{post_id}", "/api/v1/health"} <= paths
    assert not any("/users/users" in p for p in paths)


@pytest.mark.pattern("D03")
@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com", "password": "p@5s", "name": "A"},  # the password itself is invalid
        {"email": "a@example.com", "password": "long enough secret"},  # missing name: input is the body
    ],
)
async def test_validation_errors_do_not_echo_passwords(client: AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(path("create_user"), json=body)
    assert response.status_code == 422
    assert body["password"] not in response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
