"""Helpers shared by the tests, and the types of the fixtures that are factories.

Fixtures live in the conftest.py files; what a test imports lives here.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from alembic.config import Config
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import Result, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from alembic import command

if TYPE_CHECKING:
    from fastapi import FastAPI

    from devtools.postgres_provider import PostgresServer

ROOT = Path(__file__).resolve().parent.parent

# The `new_database` fixture (tests/conftest.py): each call creates an empty database on the
# test server and returns its URL (asyncpg, as the app uses); all are dropped after the test.
NewDatabase = Callable[[], str]
# The `make_user` fixture (tests/api/conftest.py): creates a user over HTTP, returns the JSON body.
UserFactory = Callable[..., Awaitable[dict[str, Any]]]
PASSWORD = "correct horse"  # every test user's password
# Argon2 at its cheapest, for the tests' settings: microseconds a hash instead of ~0.1 s.
CHEAP_HASHING = {"PASSWORD_HASH_MEMORY_KIB": 8, "PASSWORD_HASH_TIME_COST": 1, "PASSWORD_HASH_PARALLELISM": 1}


class SlowHasher:
    """Wraps an app's password hasher: each hash takes `seconds` more (as Argon2 does at its real
    cost, where the tests' settings make it instant), and the hashes computing at once are counted."""

    def __init__(self, hasher: Any, seconds: float = 0.05) -> None:
        import threading

        self.hasher, self.seconds = hasher, seconds
        self.now = self.most = 0
        self.lock = threading.Lock()

    def hash(self, password: str) -> str:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(self.seconds)
            return str(self.hasher.hash(password))
        finally:
            with self.lock:
                self.now -= 1

    def verify(self, password: str, hashed: str) -> bool:
        return bool(self.hasher.verify(password, hashed))


def real_hashing() -> dict[str, Any]:
    """The app's own Argon2 cost (the settings' defaults), for the tests that measure it."""
    from example_app.core.config import Settings

    return {name: Settings.model_fields[name].default for name in CHEAP_HASHING}


# The `make_app` fixture (tests/conftest.py): make_app(DB_POOL_SIZE=2, ...) -> a running app.
AppFactory = Callable[..., Awaitable["FastAPI"]]
# The `make_client` fixture: make_client(app) -> a client on it, get_db bound to the test session.
ClientFactory = Callable[["FastAPI"], Awaitable[AsyncClient]]


@dataclass(frozen=True)
class Caller:
    """A signed-up and logged-in user: what the API returned for it, and its auth headers."""

    user: dict[str, Any]
    headers: dict[str, str]  # {"Authorization": "Bearer <token>"}

    @property
    def id(self) -> int:
        return int(self.user["id"])


# The `make_caller` fixture (tests/conftest.py): make_caller(superuser=True, active=False, name=...).
CallerFactory = Callable[..., Awaitable[Caller]]


@dataclass(frozen=True)
class BuiltSite:
    """The `built_site` fixture (tests/docs/conftest.py): the guide after `mkdocs build --strict`."""

    www: Path  # the web root
    site: Path  # www/fastapi-ml-guide/: the built site, at the path it has on GitHub Pages
    log: str  # mkdocs' output


def alembic_config(database_url: str, ini: Path = ROOT / "alembic.ini") -> Config:
    """An alembic.ini (the project's unless `ini` names a copy), pointed at `database_url`.

    env.py reads the URL from the attributes and leaves the test run's logging alone.
    """
    cfg = Config(str(ini))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logger"] = False
    return cfg


def sync_url(url: str) -> str:
    """The same database through psycopg 3 (the migrations' env.py itself runs on asyncpg)."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_databases(server_url: str, prefix: str = "scratch") -> Iterator[NewDatabase]:
    """A factory of new, empty databases on the server of `server_url`; all are dropped on exit.

    The one place the tests create and drop databases of their own: the `new_database` fixture
    (one test) and the module-scoped ones (tests/jobs, the hot path, the fuzz) all come here.
    """
    admin = create_engine(sync_url(server_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    names: list[str] = []

    def make() -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def database_copy(server: PostgresServer, name: str) -> Iterator[PostgresServer]:
    """The server with a new database `name`, a copy of the server's own (its template), dropped
    on exit. CREATE DATABASE copies the template's files: a migrated schema in a fraction of a
    second. Two copies made at once may find the template busy for a moment: tried again."""
    from dataclasses import replace

    import psycopg

    # On the maintenance database: a session on the template itself would make it busy for the
    # other workers' copies.
    maintenance = make_url(server.url).set(database="postgres").render_as_string(hide_password=False)
    admin = create_engine(sync_url(maintenance), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    template = make_url(server.url).database
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for attempt in range(50):
                try:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                    break
                except DBAPIError as exc:
                    busy = isinstance(exc.orig, psycopg.errors.ObjectInUse)  # "being accessed by other users"
                    if not busy or attempt == 49:
                        raise
                    time.sleep(0.05 + random.random() / 10)  # apart from the other workers
        url = make_url(server.url).set(database=name).render_as_string(hide_password=False)
        yield replace(server, url=url, description=f"{server.description} (this worker: database {name})")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "scratch", *, migrated: bool = False) -> Iterator[str]:
    """One new database (asyncpg URL), migrated to head when asked, dropped on exit."""
    with scratch_databases(server_url, prefix) as make:
        url = make()
        if migrated:
            command.upgrade(alembic_config(url), "head")
        yield url


def path(name: str, **params: object) -> str:
    """Paths come from the app's routes, never typed by hand (see E11)."""
    from example_app.main import app  # imported late: settings exist once the server is up

    return app.url_path_for(name, **params)


async def sql(session: AsyncSession, statement: str, **params: object) -> Result[Any]:
    """Raw SQL on the test's own connection (and transaction): what PostgreSQL really holds."""
    connection = await session.connection()
    return await connection.execute(text(statement), params)


async def queue_as(
    db: AsyncSession,
    *,
    waiting: Sequence[float] = (),
    running: int = 0,
    later: int = 0,
    ended: dict[str, int] | None = None,
    heartbeats: Sequence[float] = (),
) -> None:
    """procrastinate's tables, in the test's transaction, holding only what is given: jobs
    scheduled an hour ahead, jobs queued so many seconds before now() (in this order: ids grow),
    running ones, ended ones by status, and workers whose last heartbeat is so many seconds old. now() is the
    transaction's start, the same for every statement of the test: the ages are exact."""
    await sql(db, "DELETE FROM procrastinate_jobs")
    await sql(db, "DELETE FROM procrastinate_workers")
    for _ in range(later):  # first: the lowest ids, ahead of the waiting ones
        await sql(db, _JOB, status="todo", later=True)
    for seconds in waiting:  # the insert's trigger writes the 'deferred' event: moved back
        job_id = (await sql(db, _JOB + " RETURNING id", status="todo", later=False)).scalar_one()
        await sql(db, _QUEUED_AGO, seconds=float(seconds), id=job_id)
    statuses = ["doing"] * running + [status for status, n in (ended or {}).items() for _ in range(n)]
    for status in statuses:
        await sql(db, _JOB, status=status, later=False)
    for seconds in heartbeats:
        await sql(db, _WORKER, seconds=float(seconds))


_JOB = """INSERT INTO procrastinate_jobs (queue_name, task_name, status, scheduled_at)
VALUES ('default', 'embed_post', CAST(:status AS procrastinate_job_status),
        CASE WHEN :later THEN now() + interval '1 hour' END)"""
_QUEUED_AGO = (
    "UPDATE procrastinate_events SET at = now() - make_interval(secs => :seconds) WHERE job_id = :id"
)
_WORKER = (
    "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - make_interval(secs => :seconds))"
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    """POST the OAuth2 password form to the token endpoint, as Swagger UI and curl do."""
    return await client.post(path("login"), data={"username": email, "password": password})


SECRET_MARKERS = re.compile(r"hashed_password|\$argon2|\$2[aby]\$")


def assert_no_secrets(text: str) -> None:
    """No password hash (nor the column's name) in what the server sent out."""
    found = SECRET_MARKERS.search(text)
    assert found is None, f"secret leaked to a client: {found.group(0)!r} in {text[:200]!r}"


async def check_response_for_secrets(response: Response) -> None:
    """httpx response hook used by every test client of the suite."""
    await response.aread()
    assert_no_secrets(response.text)


# Every test client of the suite fails a request whose response carries a hash (D03).
NO_SECRETS: dict[str, list[Any]] = {"response": [check_response_for_secrets]}


def http_client(app: FastAPI, base_url: str = "http://test") -> AsyncClient:
    """httpx on an app in this process (no socket); every response is checked for secrets."""
    return AsyncClient(transport=ASGITransport(app=app), base_url=base_url, event_hooks=NO_SECRETS)


@contextlib.contextmanager
def served_in_thread(app: FastAPI, **config: Any) -> Iterator[str]:
    """uvicorn serving `app` (its lifespan included) on a loopback port, from a thread of this
    process with an event loop of its own; its base URL. Stopped (lifespan shut down) on exit.
    `config`: uvicorn.Config's arguments (warnings only and no `server` header, as `serve` runs
    it, unless told otherwise)."""
    import threading

    import uvicorn

    from devtools.postgres_provider import free_port

    port = free_port()
    config = {"log_level": "warning", "server_header": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start within 60 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class ServedApp:
    """The app under uvicorn, in a process of its own, on a loopback port."""

    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[str]


@contextlib.contextmanager
def served_app(
    database_url: str, log: Path | None = None, args: Sequence[str] = (), **env: str
) -> Iterator[ServedApp]:
    """uvicorn example_app.main:app on a free port of 127.0.0.1 (the database migrated already),
    with uvicorn's `args` added.

    Its log (stderr) goes to `log` when given, where a test can read it while the app runs.
    """
    from devtools.postgres_provider import free_port

    port = free_port()
    log_file = log.open("w") if log is not None else None
    server = subprocess.Popen(
        [
            str(ROOT / "venv" / "bin" / "uvicorn"),
            "example_app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, **env},
        stdout=subprocess.DEVNULL,
        stderr=log_file or subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise AssertionError(server.stderr.read() if server.stderr else log and log.read_text())
            assert time.monotonic() < deadline, "uvicorn did not answer within 60 s"
            time.sleep(0.2)
        yield ServedApp(url, server)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if log_file is not None:
            log_file.close()
