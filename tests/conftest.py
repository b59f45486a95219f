"""Test fixtures: a real PostgreSQL, migrated once, one app, one rolled-back transaction per test.

The server is chosen before collection by `devtools.postgres_provider`: TEST_DATABASE_URL, else
testcontainers, else local binaries. The app is made once per run by its factory from the
tests' settings, its lifespan run once (models loaded, engine opened); a test that needs other
settings makes an app of its own (`make_app`), in the same process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from alembic import command
from devtools.postgres_provider import PostgresServer, ProviderError, provide
from example_app.core.config import Settings, load_settings
from example_app.core.security import Passwords
from tests.support import (
    CHEAP_HASHING,
    PASSWORD,
    AppFactory,
    Caller,
    CallerFactory,
    ClientFactory,
    NewDatabase,
    alembic_config,
    bearer,
    database_copy,
    http_client,
    scratch_databases,
)

_servers = contextlib.ExitStack()
_server: PostgresServer | None = None


# --8<-- [start:server]
def pytest_configure(config: pytest.Config) -> None:
    global _server
    if config.option.help or config.option.version:
        return
    if (worker := getattr(config, "workerinput", None)) is not None:
        # A pytest-xdist worker: the run's server, and a database of its own, a copy of the
        # migrated one (CREATE DATABASE ... TEMPLATE: a file copy, no migrations to run again).
        server = PostgresServer(worker["server_url"], worker["server_provider"], worker["server_description"])
        _server = _servers.enter_context(database_copy(server, f"test_{worker['workerid']}"))
    else:
        try:
            _server = _servers.enter_context(provide("TEST_DATABASE_URL"))
        except ProviderError as exc:
            raise pytest.UsageError(str(exc)) from None
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)  # the suite's own, new every run
        if config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses"):
            command.upgrade(alembic_config(_server.url), "head")  # once, before the workers copy it
    # The environment of `example_app.main:app`, and of the servers some tests start.
    os.environ["DATABASE_URL"] = _server.url


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: what each worker needs to find the run's server."""
    assert _server is not None
    node.workerinput.update(
        server_url=_server.url, server_provider=_server.provider, server_description=_server.description
    )


# --8<-- [end:server]


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"PostgreSQL: {_server.description}" if _server else None


def pytest_unconfigure(config: pytest.Config) -> None:
    _servers.close()


@pytest.fixture(scope="session")
def database_url() -> str:
    assert _server is not None
    return _server.url


# --8<-- [start:migrate_once]
@pytest.fixture(scope="session", autouse=True)
def migrated(database_url: str) -> Config:
    """Build the schema once per session with the real migrations, never create_all."""
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "head")
    return cfg


# --8<-- [end:migrate_once]


@pytest.fixture(scope="session")
async def engine(migrated: Config, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


# --8<-- [start:db_session]
@pytest.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test.

    The code under test may commit: with join_transaction_mode="create_savepoint" its commits
    release savepoints of the outer transaction, which still ends in a rollback.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


# --8<-- [end:db_session]


# --8<-- [start:app]
@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """The tests' settings: the environment's, with Argon2 at its cheapest (a test account needs
    no protection; tests/test_served_auth.py measures the real cost), and single predictions not
    micro-batched: a batch writes its log rows on a connection of its own and commits them, past
    the test's rolled-back transaction. tests/ml/test_micro_batch.py serves it switched on."""
    return load_settings(DATABASE_URL=database_url, MODEL_BATCH_WAIT_MS=0, **CHEAP_HASHING)


# asgi-lifespan gives start-up and shutdown 5 s each by default, which a loaded 2-core machine can
# stretch past. A lifespan that hangs still fails the test.
LIFESPAN_SECONDS = 30


@pytest.fixture(scope="session")
async def app(settings: Settings, migrated: Config) -> AsyncIterator[FastAPI]:
    """The app, made once from the tests' settings, its lifespan run once for the whole run."""
    from example_app.main import create_app

    app = create_app(settings)
    async with LifespanManager(app, LIFESPAN_SECONDS, LIFESPAN_SECONDS):
        yield app


@pytest.fixture
async def make_app(settings: Settings, migrated: Config) -> AsyncIterator[AppFactory]:
    """Another app in this process, from the tests' settings with some changed (validated like
    the environment's): its own engine, pool, limits and models, its lifespan run; all are shut
    down after the test."""
    from example_app.main import create_app

    async with contextlib.AsyncExitStack() as stack:

        async def make(**changes: Any) -> FastAPI:
            app = create_app(load_settings(**{**settings.model_dump(), **changes}))
            await stack.enter_async_context(LifespanManager(app, LIFESPAN_SECONDS, LIFESPAN_SECONDS))
            return app

        yield make


# --8<-- [end:app]


# --8<-- [start:client]
@pytest.fixture
async def make_client(db_session: AsyncSession) -> AsyncIterator[ClientFactory]:
    """HTTP clients on apps of this process, with get_db bound to the test session."""
    from example_app.api.dependencies import get_db

    async def get_test_db() -> AsyncIterator[AsyncSession]:
        yield db_session

    apps: list[FastAPI] = []
    async with contextlib.AsyncExitStack() as stack:

        async def make(app: FastAPI) -> AsyncClient:
            app.dependency_overrides[get_db] = get_test_db
            apps.append(app)
            await app.state.resources.login_limiter.reset()  # no login attempts counted yet
            return await stack.enter_async_context(http_client(app))

        try:
            yield make
        finally:
            for app in apps:
                app.dependency_overrides.clear()


@pytest.fixture
async def client(app: FastAPI, make_client: ClientFactory) -> AsyncClient:
    """An HTTP client on the app, with get_db bound to the test session."""
    return await make_client(app)


# --8<-- [end:client]


@pytest.fixture
def new_database(database_url: str) -> Iterator[NewDatabase]:
    """A factory of new, empty databases on the test server; all are dropped after the test.

    For the tests that need a database of their own: migrations from nothing, commands that
    commit. The session's database (migrated once, rolled back per test) is never touched.
    """
    with scratch_databases(database_url) as make:
        yield make


@pytest.fixture
def scratch_url(new_database: NewDatabase) -> str:
    """One new, empty database (asyncpg URL), dropped after the test."""
    return new_database()


@pytest.fixture
async def live_client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    """The app exactly as deployed: its own engine and pool, real commits, no overrides.

    What it writes is committed, so the tables are emptied afterwards.
    """
    assert not app.dependency_overrides
    await app.state.resources.login_limiter.reset()
    try:
        async with http_client(app, "http://live") as http:
            yield http
    finally:
        await empty_tables(engine)


async def empty_tables(engine: AsyncEngine) -> None:
    """What a test committed, gone (and the jobs its posts queued, which would name the next
    test's post ids)."""
    async with engine.begin() as conn:
        await conn.execute(
            text("TRUNCATE users, posts, predictions, procrastinate_jobs RESTART IDENTITY CASCADE")
        )


@pytest.fixture
async def committed(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The suite's engine, for reading what the app committed; the tables are emptied after."""
    yield engine
    await empty_tables(engine)


@pytest.fixture(scope="session")
async def passwords(settings: Settings) -> Passwords:
    """Hashing as the app's services get it, at the tests' (cheap) cost."""
    return Passwords.from_settings(settings)


@pytest.fixture(scope="session")
def password_hash(settings: Settings) -> str:
    """PASSWORD, hashed once per run with the tests' (cheap) Argon2 parameters."""
    from example_app.core.security import password_hasher

    return password_hasher(settings).hash(PASSWORD)


@pytest.fixture
def make_caller(db_session: AsyncSession, password_hash: str, settings: Settings) -> CallerFactory:
    """A user in the test's transaction, and the headers of a token for it (minted directly:
    the login itself is tested in tests/api/test_auth.py). Its password is PASSWORD."""
    from example_app.core.security import create_access_token
    from example_app.models import User
    from example_app.schemas.user import UserResponse

    counter = iter(range(1, 10_000))

    async def make(*, superuser: bool = False, active: bool = True, **fields: Any) -> Caller:
        n = next(counter)
        values = {"email": f"caller{n}@example.com", "name": f"Caller {n}", **fields}
        user = User(**values, hashed_password=password_hash, is_superuser=superuser, is_active=active)
        db_session.add(user)
        await db_session.commit()
        assert user.id is not None
        body = UserResponse.model_validate(user).model_dump(mode="json")
        return Caller(body, bearer(create_access_token(settings, user.id)))

    return make


@pytest.fixture
async def caller(make_caller: CallerFactory) -> Caller:
    """One logged-in, active, ordinary user."""
    return await make_caller()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The run's counts, for the last line of `python3 tasks.py test` (TEST_SUMMARY_FILE)."""
    if (path := os.environ.get("TEST_SUMMARY_FILE")) and not hasattr(terminalreporter.config, "workerinput"):
        kinds = ("passed", "failed", "error", "skipped", "deselected")
        counts = {kind: len(terminalreporter.stats.get(kind, [])) for kind in kinds}
        with open(path, "w") as summary:
            json.dump({kind: n for kind, n in counts.items() if n or kind == "passed"}, summary)
