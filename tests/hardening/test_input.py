"""HD01: input PostgreSQL cannot store or hold is a 422 naming the field, on every write route.

Each case reached the database before and came back as a 500: a NUL character (text, varchar and
jsonb refuse it), a lone surrogate (valid JSON, not encodable as UTF-8), an id above the column's
integer type. Bodies are sent as bytes: an HTTP client's own JSON encoder would refuse to encode
a lone surrogate, a fuzzer's or an attacker's does not.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.database import INT4_MAX
from tests.support import Caller, CallerFactory, path, sql

NUL, SURROGATE = "a\x00b", "a\ud800b"
INVISIBLE = ["\u200b", "\u200b\u200d\u2060", "\ufeff", " \u200b "]  # zero-width space, joiner...


async def send(client: AsyncClient, method: str, url: str, body: Any, caller: Caller | None) -> Response:
    raw = json.dumps(body).encode()  # ensure_ascii: "\ud800" travels as the escape JSON allows
    headers = {"content-type": "application/json", **(caller.headers if caller else {})}
    return await client.request(method, url, content=raw, headers=headers)


def field_error(response: Response) -> list[Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return list(error["loc"])


async def counts(db: AsyncSession) -> tuple[int, int]:
    users = (await sql(db, "SELECT count(*) FROM users")).scalar_one()
    posts = (await sql(db, "SELECT count(*) FROM posts")).scalar_one()
    return users, posts


def user_body(**fields: Any) -> dict[str, Any]:
    return {"email": "ada@example.com", "password": "correct horse", "name": "Ada", **fields}


def post_body(**fields: Any) -> dict[str, Any]:
    return {"title": "Hello", "body": "Text", "tags": ["ml"], **fields}


# --8<-- [start:storable_tests]
@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "{bad}@example.com"), ("password", "long enough {bad}"), ("name", "{bad}")],
)
async def test_sign_up_refuses_text_postgresql_cannot_store(
    client: AsyncClient, db_session: AsyncSession, field: str, value: str, bad: str
) -> None:
    before = await counts(db_session)
    response = await send(
        client, "POST", path("create_user"), user_body(**{field: value.format(bad=bad)}), None
    )
    assert field_error(response) == ["body", field]
    assert "long enough" not in response.text  # a password is never echoed, not even in part
    assert await counts(db_session) == before


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [("title", "{bad}", ["title"]), ("body", "{bad}", ["body"]), ("tags", ["ok", "{bad}"], ["tags", 1])],
)
async def test_posts_refuse_it_on_create_and_on_edit(
    client: AsyncClient,
    caller: Caller,
    db_session: AsyncSession,
    field: str,
    value: Any,
    loc: list[Any],
    bad: str,
) -> None:
    filled = [v.format(bad=bad) for v in value] if isinstance(value, list) else value.format(bad=bad)
    created = await send(client, "POST", path("create_post"), post_body(**{field: filled}), caller)
    assert field_error(created) == ["body", *loc]
    assert await counts(db_session) == (1, 0)

    post = (await send(client, "POST", path("create_post"), post_body(), caller)).json()
    edited = await send(client, "PATCH", path("update_post", post_id=post["id"]), {field: filled}, caller)
    assert field_error(edited) == ["body", *loc]
    stored = (await sql(db_session, "SELECT title, body, tags FROM posts")).one()
    assert tuple(stored) == ("Hello", "Text", ["ml"])


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
async def test_a_user_edit_refuses_it(client: AsyncClient, caller: Caller, bad: str) -> None:
    response = await send(client, "PATCH", path("update_user", user_id=caller.id), {"name": bad}, caller)
    assert field_error(response) == ["body", "name"]


@pytest.mark.pattern("HD01")
async def test_the_login_form_and_the_search_query_refuse_a_nul(client: AsyncClient, caller: Caller) -> None:
    form = {"username": "ada\x00@example.com", "password": "correct horse"}
    assert field_error(await client.post(path("login"), data=form)) == ["body", "username"]
    search = await client.get(path("search_posts"), params={"q": NUL}, headers=caller.headers)
    assert field_error(search) == ["query", "q"]


# --8<-- [end:storable_tests]


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("name", INVISIBLE, ids=["zwsp", "joiners", "bom", "spaced-zwsp"])
async def test_a_name_or_title_of_invisible_characters_is_refused(
    client: AsyncClient, caller: Caller, name: str
) -> None:
    signed_up = await send(client, "POST", path("create_user"), user_body(name=name), None)
    assert field_error(signed_up) == ["body", "name"]
    renamed = await send(client, "PATCH", path("update_user", user_id=caller.id), {"name": name}, caller)
    assert field_error(renamed) == ["body", "name"]
    titled = await send(client, "POST", path("create_post"), post_body(title=name), caller)
    assert field_error(titled) == ["body", "title"]
    tagged = await send(client, "POST", path("create_post"), post_body(tags=[name]), caller)
    assert field_error(tagged) == ["body", "tags", 0]


@pytest.mark.pattern("HD01")
async def test_names_in_any_script_with_marks_and_joiners_are_kept(client: AsyncClient) -> None:
    # The rule is "something visible", not "ASCII": these are ordinary names.
    for n, name in enumerate(["Zoë", "Ólafur", "李小龍", "नमस्ते", "👩\u200d💻 Ada"]):
        response = await send(
            client, "POST", path("create_user"), user_body(email=f"n{n}@example.com", name=name), None
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == name


def refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")  # what a strict client's parser would say


# --8<-- [start:id_tests]
ID_ROUTES = [
    ("GET", "get_user", "user_id"),
    ("PATCH", "update_user", "user_id"),
    ("DELETE", "delete_user", "user_id"),
    ("GET", "list_user_posts", "user_id"),
    ("GET", "get_post", "post_id"),
    ("PATCH", "update_post", "post_id"),
    ("DELETE", "delete_post", "post_id"),
    ("GET", "get_job", "job_id"),
]


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize(("method", "route", "param"), ID_ROUTES)
@pytest.mark.parametrize("bad_id", ["0", "-1", str(2**63), "1e3", "1.5", "NaN", "9" * 400])
async def test_path_ids_outside_the_column_type_are_422(
    client: AsyncClient, caller: Caller, method: str, route: str, param: str, bad_id: str
) -> None:
    url = path(route, **{param: 1}).replace("/1", f"/{bad_id}", 1)
    response = await client.request(
        method, url, headers=caller.headers, json={} if method == "PATCH" else None
    )
    assert field_error(response) == ["path", param]


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("route", ["get_user", "get_post", "list_user_posts"])
async def test_the_first_id_past_int4_is_422_and_the_last_one_in_it_is_looked_up(
    client: AsyncClient, caller: Caller, route: str
) -> None:
    param = "post_id" if route == "get_post" else "user_id"
    over = await client.get(path(route, **{param: INT4_MAX + 1}), headers=caller.headers)
    assert field_error(over) == ["path", param]
    last = await client.get(path(route, **{param: INT4_MAX}), headers=caller.headers)
    assert last.status_code in (200, 404)  # looked up: the database can hold it


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize("value", ["2147483648", "NaN", "Infinity", "1e999", "-1e999"])
async def test_numbers_json_allows_and_python_parses_are_422_with_a_safe_echo(
    client: AsyncClient, caller: Caller, value: str
) -> None:
    # Python's JSON parser reads NaN, Infinity and 1e999 (as inf); the error body must still be JSON.
    raw = f'{{"title": "t", "body": "b", "author_id": {value}}}'.encode()
    headers = {"content-type": "application/json", **caller.headers}
    response = await client.post(path("create_post"), content=raw, headers=headers)
    assert field_error(response) == ["body", "author_id"]
    echoed = json.loads(response.text, parse_constant=refuse)["detail"][0]["input"]
    assert echoed == (int(value) if value.isdigit() else str(float(value)))


# --8<-- [end:id_tests]


@pytest.mark.pattern("HD01")
@pytest.mark.parametrize(
    "position",
    ["0001-01-01T00:00:00+05:00|1", "9999-12-31T23:59:59-05:00|1", "2026-01-01T00:00:00+00:00|" + "9" * 30],
)
async def test_a_forged_cursor_outside_what_postgresql_holds_is_422(
    client: AsyncClient, caller: Caller, position: str
) -> None:
    after = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    response = await client.get(path("list_predictions"), params={"after": after}, headers=caller.headers)
    assert field_error(response) == ["query", "after"]


@pytest.mark.pattern("HD01", "HD05")
@pytest.mark.parametrize("value", [0, 1, "true", "yes", "1", 0.0])
async def test_booleans_are_strict(
    client: AsyncClient, make_caller: CallerFactory, db_session: AsyncSession, value: Any
) -> None:
    admin, other = await make_caller(superuser=True), await make_caller()
    for field in ("is_active", "is_superuser"):
        response = await send(client, "PATCH", path("update_user", user_id=other.id), {field: value}, admin)
        assert field_error(response) == ["body", field]
    flags = (
        await sql(db_session, "SELECT is_active, is_superuser FROM users WHERE id = :i", i=other.id)
    ).one()
    assert tuple(flags) == (True, False)
    done = await send(client, "PATCH", path("update_user", user_id=other.id), {"is_active": False}, admin)
    assert done.status_code == 200
    assert done.json()["is_active"] is False
