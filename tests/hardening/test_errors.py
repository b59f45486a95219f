"""HD02 and HD05: error bodies never echo secrets or large inputs, whatever the body's shape or
content type; every error has the one documented shape; OPTIONS and 405 say what is allowed."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import TypeAdapter

from example_app.api.dependencies import require_active_user
from example_app.models import User
from example_app.schemas.error import ErrorResponse
from tests.support import Caller, path

SECRET = "my secret passphrase 7"
SIGN_UP = {"email": "not an email", "password": SECRET, "name": ""}  # three errors, one a secret


# --8<-- [start:echo_tests]
@pytest.mark.pattern("HD02")
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(SIGN_UP), "application/json"),
        (json.dumps(SIGN_UP), "text/plain"),  # not JSON by its type: the raw text is the input
        (json.dumps([SIGN_UP]), "application/json"),  # a list where an object belongs
        (json.dumps({"user": SIGN_UP}), "application/json"),  # nested one level down
        (json.dumps({**SIGN_UP, "PASSWORD": SECRET, "password": 7}), "application/json"),
        ("email=x&password=" + SECRET.replace(" ", "+"), "application/x-www-form-urlencoded"),
        (json.dumps(SIGN_UP)[:-5], "application/json"),  # cut short: invalid JSON
    ],
    ids=["json", "text-plain", "list-wrapped", "nested", "other-case-key", "form", "broken-json"],
)
async def test_no_422_echoes_the_password(client: AsyncClient, content: str, content_type: str) -> None:
    response = await client.post(path("create_user"), content=content, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert SECRET not in response.text
    assert SECRET.split()[-2] not in response.text  # not even a part of it ("passphrase")
    ErrorResponse.model_validate_json(response.text)


@pytest.mark.pattern("HD02")
async def test_the_login_form_never_echoes_its_password(client: AsyncClient) -> None:
    form = {"username": "x" * 300, "password": SECRET + "x" * 200}  # both over their limits
    response = await client.post(path("login"), data=form)
    assert response.status_code == 422
    assert SECRET not in response.text


@pytest.mark.pattern("HD02")
@pytest.mark.parametrize(
    "body",
    [
        {**SIGN_UP, "name": "n" * 1_500_000},  # one huge string
        {**SIGN_UP, "unknown": list(range(200_000))},  # a huge array where nothing belongs
        {**SIGN_UP, "k" * 1_000_000: 1},  # a huge key: it is in the error's loc
        [{"x": i} for i in range(50_000)],  # many items
    ],
    ids=["long-string", "long-array", "long-key", "many-items"],
)
async def test_the_echo_is_bounded(client: AsyncClient, body: Any) -> None:
    response = await client.post(path("create_user"), json=body)
    assert response.status_code == 422
    assert len(response.content) < 4_000  # from a body of about a megabyte
    ErrorResponse.model_validate_json(response.text)


@pytest.mark.pattern("HD02")
async def test_many_problems_are_cut_to_a_count(client: AsyncClient, caller: Caller) -> None:
    rows = [{"pixels": ["x"] * 64}] * 100  # 6,400 bad pixels
    response = await client.post(path("predict_batch"), json={"rows": rows}, headers=caller.headers)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == 21
    assert detail[-1] == {"loc": ["body"], "msg": "... and 6380 more problems", "type": "too_many_errors"}


# --8<-- [end:echo_tests]


# --8<-- [start:shape_tests]
@pytest.fixture
async def vanished_caller(app: FastAPI) -> AsyncIterator[User]:
    """A caller whose account is gone by the time the post is written (deleted mid-request)."""
    ghost = User(id=987_654, email="ghost@example.com", name="Ghost", hashed_password="x")
    app.dependency_overrides[require_active_user] = lambda: ghost
    yield ghost
    del app.dependency_overrides[require_active_user]


@pytest.mark.pattern("HD05")
async def test_a_bad_reference_is_a_422_of_the_same_shape_as_a_bad_field(
    client: AsyncClient, vanished_caller: User
) -> None:
    response = await client.post(path("create_post"), json={"title": "t", "body": "b"})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body"], "msg": "author_id 987654 is not an existing user", "type": "invalid_reference"}
    ]
    invalid_field = await client.post(path("create_post"), json={"title": "", "body": "b"})
    assert invalid_field.status_code == 422
    for body in (response.json(), invalid_field.json()):
        assert isinstance(ErrorResponse.model_validate(body).detail, list)


@pytest.mark.pattern("HD05")
async def test_every_error_status_has_the_one_body(client: AsyncClient, caller: Caller) -> None:
    errors = [
        await client.get(path("get_user", user_id=caller.id)),  # 401: no token
        await client.get(path("list_users"), headers=caller.headers),  # 403: not a superuser
        await client.get(path("get_post", post_id=123_456)),  # 404
        await client.post(path("create_user"), json={**SIGN_UP, "email": caller.user["email"], "name": "n"}),
        await client.post(path("create_post"), content=b" " * 3_000_000, headers=caller.headers),  # 413
        await client.get(path("list_posts"), params={"limit": 0}),  # 422 (and the 409 above)
        await client.put(path("list_posts")),  # 405
    ]
    assert [r.status_code for r in errors] == [401, 403, 404, 409, 413, 422, 405]
    for response in errors:
        TypeAdapter(ErrorResponse).validate_json(response.text)


@pytest.mark.pattern("HD05")
def test_every_error_status_of_every_operation_is_the_one_body() -> None:
    from example_app.main import app

    openapi = app.openapi()
    # The health checks' 503 is a health report, by design: monitors read its fields.
    health = {"/api/v1/health": "HealthResponse", "/api/v1/health/ready": "ReadinessResponse"}
    # Liveness has no error answer: a process that cannot say 200 there says nothing at all.
    liveness = "/api/v1/health/live"
    for route, operations in openapi["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
            assert bool(errors) != (route == liveness), f"{method} {route} documents no error"
            for code, response in errors.items():
                [schema] = [c["schema"] for c in response["content"].values()]
                wanted = health.get(route, "ErrorResponse")
                assert schema == {"$ref": f"#/components/schemas/{wanted}"}, (method, route, code)


@pytest.mark.pattern("HD05")
def test_patch_schemas_advertise_no_null() -> None:
    from example_app.main import app

    schemas = app.openapi()["components"]["schemas"]
    for name in ("UserUpdate", "PostUpdate"):
        assert "null" not in json.dumps(schemas[name]), schemas[name]  # null is refused: not offered


# --8<-- [end:shape_tests]


# --8<-- [start:options_tests]
@pytest.mark.pattern("HD05")
async def test_options_answers_the_allowed_methods(client: AsyncClient) -> None:
    users = await client.options(path("list_users"))
    assert users.status_code == 204
    assert users.headers["allow"] == "GET, HEAD, OPTIONS, POST"  # both routes of the path
    one = await client.options(path("get_user", user_id=1))
    assert one.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    wrong = await client.put(path("get_user", user_id=1))
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == one.headers["allow"]
    assert wrong.json()["detail"] == "Method Not Allowed"


@pytest.mark.pattern("HD05")
async def test_a_named_path_beside_an_id_path_is_never_taken_for_an_id(
    client: AsyncClient, caller: Caller
) -> None:
    """/posts/search and /posts/{post_id}: "search" is no post id, so PATCH and DELETE there are
    a 405 that allows only what the search path has, not a 422 about a malformed id."""
    search = path("search_posts")
    for method in ("PATCH", "DELETE", "PUT"):
        wrong = await client.request(method, search, headers=caller.headers, json={})
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD, OPTIONS"), method
    assert (await client.options(search)).headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await client.patch(path("get_post", post_id=1), json={})).status_code == 401  # an id path


@pytest.mark.pattern("HD05")
async def test_options_on_every_documented_path_allows_what_the_document_lists(client: AsyncClient) -> None:
    from example_app.main import app

    for template, operations in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^/]+\}", "1", template)
        methods = {method.upper() for method in operations} | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        answer = await client.options(concrete)
        assert answer.status_code == 204, template
        assert answer.headers["allow"] == ", ".join(sorted(methods)), template


# --8<-- [end:options_tests]
