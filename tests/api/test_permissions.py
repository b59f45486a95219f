"""The rules table of the Security page, row by row: who is allowed, who is refused, and how.

Each case runs in its own rolled-back transaction with the same cast: an account's owner, another
ordinary user, a superuser, an inactive user, and a post written by the owner.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import API_V1_PREFIX
from example_app.ml.artifact import DIGITS_MODEL_DIR
from tests.support import Caller, CallerFactory, bearer, path, sql


@dataclass(frozen=True)
class Cast:
    owner: Caller
    other: Caller
    admin: Caller
    inactive: Caller
    post_id: int
    job_id: int  # the post's embedding job (queued, never run: no worker here)

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
    job_id = int(created.headers["Embedding-Job"].rsplit("/", 1)[1])
    return Cast(owner, other, admin, inactive, created.json()["id"], job_id)


DIGIT = json.loads((DIGITS_MODEL_DIR / "example-request.json").read_text())  # a zero


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
        assert (missing.status_code, response.json()["detail"]) == (
            404,
            f"User {params['user_id']} not found",
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


# --- Every operation of the API, read from its OpenAPI document ---------------------------------------
# New routes are covered the day they are added: none of these lists names what is protected.

API = API_V1_PREFIX
Operation = tuple[str, str]  # ("GET", "/api/v1/jobs/{job_id}"), as the OpenAPI document has it

# What anyone may call (the rules table's "anyone" rows); /docs, /redoc and /openapi.json are
# not operations of the document. Every other operation takes an active user's token.
PUBLIC: set[Operation] = {
    ("POST", f"{API}/users"),  # sign up
    ("POST", f"{API}/auth/token"),  # log in
    ("GET", f"{API}/health"),
    ("GET", f"{API}/health/live"),
    ("GET", f"{API}/health/ready"),
    ("GET", f"{API}/posts"),
    ("GET", f"{API}/posts/{{post_id}}"),
    ("GET", f"{API}/users/{{user_id}}/posts"),
}
# The operations with a rule of their own above (ownership, superusers); all others are ML
# routes, today's and those added later: any active user.
OWN_RULES: set[Operation] = {
    ("GET", f"{API}/users"),
    ("GET", f"{API}/users/{{user_id}}"),
    ("PATCH", f"{API}/users/{{user_id}}"),
    ("DELETE", f"{API}/users/{{user_id}}"),
    ("POST", f"{API}/posts"),
    ("PATCH", f"{API}/posts/{{post_id}}"),
    ("DELETE", f"{API}/posts/{{post_id}}"),
}
# A request each ML route accepts, and what it answers an active user. A route missing here
# is still called (with no body), and must not answer 401 or 403.
ML_EXAMPLES: dict[Operation, tuple[dict[str, Any], int]] = {
    ("POST", f"{API}/predictions"): ({"json": DIGIT}, 200),
    ("POST", f"{API}/predictions/batch"): ({"json": {"rows": [DIGIT, DIGIT]}}, 200),
    ("GET", f"{API}/predictions"): ({}, 200),
    ("GET", f"{API}/predictions/export"): ({}, 200),
    ("GET", f"{API}/models"): ({}, 200),
    ("GET", f"{API}/posts/search"): ({"params": {"q": "cats"}}, 200),
    ("GET", f"{API}/jobs/{{job_id}}"): ({}, 200),
    # The stream ends at once: its watcher reads committed rows, and this job is uncommitted.
    ("GET", f"{API}/jobs/{{job_id}}/events"): ({}, 200),
}


def operations() -> set[Operation]:
    from example_app.main import app

    paths = app.openapi()["paths"]
    return {(method.upper(), route) for route, methods in paths.items() for method in methods}


def ml_operations() -> set[Operation]:
    return operations() - PUBLIC - OWN_RULES


async def call(client: AsyncClient, cast: Cast, operation: Operation, actor: Caller | None) -> Response:
    method, route = operation
    ids = {"user_id": cast.owner.id, "post_id": cast.post_id, "job_id": cast.job_id}
    url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), route)
    example = ML_EXAMPLES.get(operation, ({}, 0))[0]
    return await client.request(method, url, headers=actor.headers if actor else {}, **example)


@pytest.mark.pattern("AU03")
def test_the_ml_routes_are_found_and_every_operation_is_classified() -> None:
    assert not set(ML_EXAMPLES) - ml_operations()  # today's, at least: the enumeration finds them
    assert not (PUBLIC | OWN_RULES) - operations()  # no stale entries in either list


@pytest.mark.pattern("AU02", "AU03")
async def test_every_operation_but_the_public_ones_refuses_anonymous_and_inactive_callers(
    client: AsyncClient, cast: Cast
) -> None:
    protected = sorted(operations() - PUBLIC)
    anonymous = {op: await call(client, cast, op, None) for op in protected}
    assert {op: r.status_code for op, r in anonymous.items()} == dict.fromkeys(protected, 401)
    assert all(r.headers["www-authenticate"] == "Bearer" for r in anonymous.values())
    inactive = {op: await call(client, cast, op, cast.inactive) for op in protected}
    assert {op: r.status_code for op, r in inactive.items()} == dict.fromkeys(protected, 403)
    assert all(r.json()["detail"] == "This account is inactive" for r in inactive.values())


@pytest.mark.pattern("AU03")
async def test_every_ml_route_allows_any_active_user(client: AsyncClient, cast: Cast) -> None:
    """The rules table's last row, on every ML operation: an ordinary user, not a superuser."""
    answered = {op: (await call(client, cast, op, cast.other)).status_code for op in sorted(ml_operations())}
    assert not {op: status for op, status in answered.items() if status in (401, 403)}
    expected = {op: status for op, (_, status) in ML_EXAMPLES.items()}
    assert {op: answered[op] for op in expected} == expected
