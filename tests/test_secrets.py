"""Password hashes never leave the server: not in responses, the OpenAPI schema, or the logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings
from example_app.core.database import create_engine
from example_app.models import User
from tests.guide_originals import original_app
from tests.support import NO_SECRETS, CallerFactory, assert_no_secrets, log_in, path


def walk(node: Any) -> list[str]:
    """Every key and string in a JSON document."""
    if isinstance(node, dict):
        return [*node.keys(), *(s for v in node.values() for s in walk(v))]
    if isinstance(node, list):
        return [s for v in node for s in walk(v)]
    return [node] if isinstance(node, str) else []


@pytest.mark.pattern("D03", "E13", "R08")
def test_no_response_schema_in_openapi_exposes_a_password() -> None:
    from example_app.main import app

    schema = app.openapi()
    for route, methods in schema["paths"].items():
        for method, operation in methods.items():
            responses = operation.get("responses", {})
            assert "200" in responses or "201" in responses or "204" in responses, (method, route)
            for response in responses.values():
                refs = walk(response)
                names = {r.rsplit("/", 1)[-1] for r in refs if r.startswith("#/components/schemas/")}
                for name in names:
                    fields = set(schema["components"]["schemas"][name].get("properties", {}))
                    assert not {"password", "hashed_password"} & fields, (method, route, name)
    assert "hashed_password" not in str(schema)


@pytest.mark.pattern("R08", "E13")
def test_every_route_declares_a_response_model() -> None:
    from fastapi.responses import StreamingResponse
    from fastapi.routing import APIRoute

    from example_app.api.routes import auth, health, posts, predictions, users

    routers = (health, auth, users, posts, predictions)
    api_routes = [r for m in routers for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(api_routes) >= 19
    for route in api_routes:
        # 204 routes return no body at all, a stream is its own format (JSON Lines); every other
        # one filters through a schema.
        streams = route.response_class is StreamingResponse
        assert route.response_model is not None or route.status_code == 204 or streams, route.path


@pytest.mark.pattern("D03", "E13")
async def test_the_original_route_without_response_model_leaks_the_hash(
    database_url: str, db_session: AsyncSession
) -> None:
    """Why response_model matters, and proof that the suite's secret check would catch a leak."""
    sync_url = make_url(database_url).set(drivername="postgresql+psycopg").render_as_string(False)
    app, engine = original_app(sync_url)
    email = "leak@example.com"
    with Session(engine) as session:  # committed: the original app has its own connections
        session.add(User(email=email, hashed_password="$argon2id$v=19$fake", name="Leak"))
        session.commit()
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as raw:
            body = (await raw.get("/users")).text
        assert "hashed_password" in body
        with pytest.raises(AssertionError, match="secret leaked"):
            assert_no_secrets(body)
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", event_hooks=NO_SECRETS
        ) as guarded:
            with pytest.raises(AssertionError, match="secret leaked"):
                await guarded.get("/users")
    finally:
        with Session(engine) as session:
            session.exec(User.__table__.delete().where(User.__table__.c.email == email))  # type: ignore[attr-defined]
            session.commit()
        engine.dispose()


@pytest.mark.pattern("D03")
async def test_responses_of_every_user_route_are_clean(
    client: AsyncClient, make_caller: CallerFactory
) -> None:
    assert NO_SECRETS["response"][0] in client.event_hooks["response"]
    me = await make_caller(superuser=True)
    created = await client.post(
        path("create_user"), json={"email": "clean@example.com", "password": "long enough", "name": "C"}
    )
    user_id = created.json()["id"]
    for response in (
        created,
        await log_in(client, "clean@example.com", "long enough"),
        await client.get(path("get_user", user_id=user_id), headers=me.headers),
        await client.get(path("list_users"), headers=me.headers),
        await client.patch(path("update_user", user_id=user_id), json={"name": "D"}, headers=me.headers),
        await client.post(path("create_post"), json={"title": "t", "body": "b"}, headers=me.headers),
    ):
        assert response.status_code in (200, 201)
        assert_no_secrets(response.text)  # also checked by the client's hook on every request


async def _insert_with_echo(engine: AsyncEngine, caplog: pytest.LogCaptureFixture) -> str:
    """Insert a user (rolled back) and return what SQLAlchemy's engine logger printed."""
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            async with engine.connect() as conn:
                transaction = await conn.begin()
                session = AsyncSession(bind=conn)
                session.add(User(email="echo@example.com", hashed_password="$argon2id$v=19$echo", name="E"))
                await session.flush()
                await transaction.rollback()
    finally:
        await engine.dispose()
    return caplog.text


# --8<-- [start:echo_tests]
@pytest.mark.pattern("E16", "DB02")
async def test_sql_echo_of_the_original_logs_the_hash(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # create_engine(url, echo=settings.DEBUG), as in the original guide
    logged = await _insert_with_echo(create_async_engine(database_url, echo=True), caplog)
    assert "$argon2id$v=19$echo" in logged


@pytest.mark.pattern("E16", "DB02")
async def test_the_app_engine_echoes_sql_without_parameters(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(Settings(DATABASE_URL=database_url, DB_ECHO=True))
    logged = await _insert_with_echo(engine, caplog)
    assert "INSERT INTO users" in logged  # SQL is logged...
    assert "$argon2id" not in logged  # ...its bound values are not
    assert "[SQL parameters hidden due to hide_parameters=True]" in logged


# --8<-- [end:echo_tests]
