"""The rules table of the Security page, row by row: who is allowed, who is refused, and how.

Each case runs in its own rolled-back transaction with the same cast: an account's owner, another
ordinary user, a superuser, an inactive user, and a post written by the owner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import get_settings
from tests.support import Caller, CallerFactory, bearer, path, sql


@dataclass(frozen=True)
class Cast:
    owner: Caller
    other: Caller
    admin: Caller
    inactive: Caller
    post_id: int

    def caller(self, name: str | None) -> Caller | None:
        return None if name is None else getattr(self, name)

    def id_of(self, name: str) -> int:
        return self.post_id if name == "post" else getattr(self, name).id


@pytest.fixture
async def cast(client: AsyncClient, make_caller: CallerFactory) -> Cast:
    owner = await make_caller()
    other, admin, inactive = (
        await make_caller(),
        await make_caller(superuser=True),
        await make_caller(active=False),
    )
    created = await client.post(
        path("create_post"), json={"title": "Mine", "body": "b"}, headers=owner.headers
    )
    return Cast(owner, other, admin, inactive, created.json()["id"])


DIGIT = json.loads((get_settings().MODEL_DIR / "example-request.json").read_text())  # a zero


@dataclass(frozen=True)
class Case:
    method: str
    route: str
    target: str | None  # whose id goes into the path: "owner", "other", "admin", "inactive", "post"
    actor: str | None  # who sends the request; None: no token
    status: int
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        on = f" {self.target}" if self.target else ""
        return f"{self.actor or 'anonymous'}: {self.method} {self.route}{on} -> {self.status}"


# --8<-- [start:rules_table]
RULES: dict[str, list[Case]] = {
    "read a user: that user, or a superuser": [
        Case("GET", "get_user", "owner", "owner", 200),
        Case("GET", "get_user", "owner", "admin", 200),
        Case("GET", "get_user", "owner", "other", 404),  # as if there were no such account
        Case("GET", "get_user", "owner", None, 401),
        Case("GET", "get_user", "inactive", "inactive", 403),
    ],
    "list users: superusers": [
        Case("GET", "list_users", None, "admin", 200),
        Case("GET", "list_users", None, "owner", 403),
        Case("GET", "list_users", None, None, 401),
    ],
    "edit a user: that user, or a superuser": [
        Case("PATCH", "update_user", "owner", "owner", 200, {"name": "New name"}),
        Case("PATCH", "update_user", "owner", "admin", 200, {"name": "New name"}),
        Case("PATCH", "update_user", "owner", "other", 404, {"name": "New name"}),
        Case("PATCH", "update_user", "owner", None, 401, {"name": "New name"}),
    ],
    "deactivate or promote a user: a superuser, not on themself": [
        Case("PATCH", "update_user", "owner", "admin", 200, {"is_active": False}),
        Case("PATCH", "update_user", "owner", "admin", 200, {"is_superuser": True}),
        Case("PATCH", "update_user", "owner", "owner", 403, {"is_active": False}),
        Case("PATCH", "update_user", "owner", "owner", 403, {"is_superuser": True}),
        Case("PATCH", "update_user", "admin", "admin", 403, {"is_superuser": False}),
        Case("PATCH", "update_user", "owner", "other", 404, {"is_active": False}),
        Case("PATCH", "update_user", "owner", None, 401, {"is_active": False}),
    ],
    "delete a user: that user, or a superuser": [
        Case("DELETE", "delete_user", "owner", "owner", 204),
        Case("DELETE", "delete_user", "owner", "admin", 204),
        Case("DELETE", "delete_user", "owner", "other", 404),
        Case("DELETE", "delete_user", "owner", None, 401),
    ],
    "read posts, list a user's posts: anyone": [
        Case("GET", "list_posts", None, None, 200),
        Case("GET", "get_post", "post", None, 200),
        Case("GET", "list_user_posts", "owner", None, 200),
    ],
    "create a post: any active user": [
        Case("POST", "create_post", None, "other", 201, {"title": "t", "body": "b"}),
        Case("POST", "create_post", None, None, 401, {"title": "t", "body": "b"}),
        Case("POST", "create_post", None, "inactive", 403, {"title": "t", "body": "b"}),
    ],
    "edit or delete a post: its author, or a superuser": [
        Case("PATCH", "update_post", "post", "owner", 200, {"title": "Edited"}),
        Case("PATCH", "update_post", "post", "admin", 200, {"title": "Edited"}),
        Case("PATCH", "update_post", "post", "other", 403, {"title": "Edited"}),  # posts are public
        Case("PATCH", "update_post", "post", None, 401, {"title": "Edited"}),
        Case("DELETE", "delete_post", "post", "owner", 204),
        Case("DELETE", "delete_post", "post", "admin", 204),
        Case("DELETE", "delete_post", "post", "other", 403),
        Case("DELETE", "delete_post", "post", None, 401),
    ],
    "every ML route: any active user": [
        Case("GET", "list_models", None, "other", 200),
        Case("POST", "predict", None, "other", 200, DIGIT),
        Case("POST", "predict", None, None, 401, DIGIT),
        Case("POST", "predict", None, "inactive", 403, DIGIT),
        Case("GET", "list_predictions", None, "admin", 200),
        Case("GET", "list_predictions", None, None, 401),
    ],
}
# --8<-- [end:rules_table]

CASES = [
    pytest.param(rule, case, id=f"{rule.split(':')[0]} | {case}") for rule, cs in RULES.items() for case in cs
]
PARAM = {
    "get_user": "user_id",
    "update_user": "user_id",
    "delete_user": "user_id",
    "list_user_posts": "user_id",
}


@pytest.mark.pattern("AU03", "AU02")
@pytest.mark.parametrize(("rule", "case"), CASES)
async def test_rules_table(client: AsyncClient, cast: Cast, rule: str, case: Case) -> None:
    params = {PARAM.get(case.route, "post_id"): cast.id_of(case.target)} if case.target else {}
    actor = cast.caller(case.actor)
    response = await client.request(
        case.method, path(case.route, **params), json=case.body, headers=actor.headers if actor else {}
    )
    assert response.status_code == case.status, response.text
    if case.status == 404:  # indistinguishable from an account that does not exist
        missing = await client.request(
            case.method,
            path(case.route, user_id=999_999),
            json=case.body,
            headers=actor.headers if actor else {},
        )
        assert (missing.status_code, response.json()) == (
            404,
            {"detail": f"User {params['user_id']} not found"},
        )


@pytest.mark.pattern("AU03")
def test_every_rule_has_an_allowed_and_a_refused_case() -> None:
    for rule, cases in RULES.items():
        if rule.endswith("anyone"):
            continue  # nothing to refuse: see test_public_routes_need_no_token
        assert any(c.status < 300 for c in cases), rule
        assert any(c.status >= 400 and c.actor is not None for c in cases), rule  # not only 401s
        assert any(c.status == 401 for c in cases), rule


@pytest.mark.pattern("AU03", "AU01")
async def test_public_routes_need_no_token_and_ignore_a_bad_one(client: AsyncClient, cast: Cast) -> None:
    anonymous = [
        await client.post(
            path("create_user"), json={"email": "new@example.com", "password": "long enough", "name": "N"}
        ),
        await client.post(path("login"), data={"username": "new@example.com", "password": "long enough"}),
        await client.get(path("health")),
        await client.get(path("list_posts")),
        await client.get(path("get_post", post_id=cast.post_id)),
        await client.get(path("list_user_posts", user_id=cast.owner.id)),
    ]
    assert [r.status_code for r in anonymous] == [201, 200, 200, 200, 200, 200]
    expired = bearer("expired.or.forged")  # a public route does not read it, so cannot refuse it
    assert (await client.get(path("list_posts"), headers=expired)).status_code == 200


# --8<-- [start:test_author_from_token]
@pytest.mark.pattern("AU03")
async def test_the_author_is_the_caller_never_the_body(
    client: AsyncClient, cast: Cast, db_session: AsyncSession
) -> None:
    body = {"title": "Whose?", "body": "b"}
    created = await client.post(path("create_post"), json=body, headers=cast.other.headers)
    assert created.json()["author_id"] == cast.other.id
    impersonating = await client.post(
        path("create_post"), json={**body, "author_id": cast.owner.id}, headers=cast.other.headers
    )
    assert impersonating.status_code == 422  # author_id is not a field of PostCreate
    rows = await sql(db_session, "SELECT author_id FROM posts WHERE title = 'Whose?'")
    assert rows.scalars().all() == [cast.other.id]


# --8<-- [end:test_author_from_token]


@pytest.mark.pattern("AU03")
async def test_refusals_change_nothing(client: AsyncClient, cast: Cast, db_session: AsyncSession) -> None:
    other = cast.other.headers
    await client.patch(path("update_user", user_id=cast.owner.id), json={"name": "Hacked"}, headers=other)
    await client.delete(path("delete_user", user_id=cast.owner.id), headers=other)
    await client.patch(path("update_post", post_id=cast.post_id), json={"title": "Hacked"}, headers=other)
    await client.delete(path("delete_post", post_id=cast.post_id), headers=other)
    await client.patch(
        path("update_user", user_id=cast.owner.id), json={"is_superuser": True}, headers=cast.owner.headers
    )
    owner = (
        await sql(db_session, "SELECT name, is_superuser FROM users WHERE id = :id", id=cast.owner.id)
    ).one()
    assert tuple(owner) == (cast.owner.user["name"], False)
    title = await sql(db_session, "SELECT title FROM posts WHERE id = :id", id=cast.post_id)
    assert title.scalar_one() == "Mine"


@pytest.mark.pattern("AU03")
async def test_a_demoted_superuser_loses_the_right_at_once(
    client: AsyncClient, cast: Cast, make_caller: CallerFactory
) -> None:
    """The token names the user, not their rights: each request reads the account."""
    second_admin = await make_caller(superuser=True)
    assert (await client.get(path("list_users"), headers=cast.admin.headers)).status_code == 200
    demote = await client.patch(
        path("update_user", user_id=cast.admin.id), json={"is_superuser": False}, headers=second_admin.headers
    )
    assert demote.status_code == 200
    assert (await client.get(path("list_users"), headers=cast.admin.headers)).status_code == 403  # same token
