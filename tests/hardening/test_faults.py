"""HD04: database faults on a PostgreSQL of the tests' own, under the served app.

Frozen (every server process SIGSTOPped: a stalled host, a paused container), routes answer 503
with Retry-After within the sum of the waits the settings allow, and /health within its budget.
Stopped (`pg_ctl stop`), the same routes answer 503 at once, not 500. Each such answer is one line
in the log, without a traceback. Afterwards the same app process serves again: nothing restarts.
The server is always resumed or started again, in the context managers' `finally`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alembic import command
from example_app.core.config import get_settings
from tests.hardening.servers import DedicatedServer, dedicated_server
from tests.support import PASSWORD, ServedApp, alembic_config, served_app

# Short waits keep the test fast; the bound each route must meet is computed from them.
WAITS = {
    "DB_POOL_TIMEOUT": 1.0,
    "DB_CONNECT_TIMEOUT": 1.0,
    "DB_STATEMENT_TIMEOUT": 1.0,
    "DB_COMMAND_TIMEOUT": 1.5,
}
# The longest a request can wait: for a pooled connection, for its ping, then for a new one;
# MARGIN is for the rest of the request on a busy 2-core machine (CI runs other things too).
MARGIN = 2.0
BOUND = WAITS["DB_POOL_TIMEOUT"] + WAITS["DB_COMMAND_TIMEOUT"] + WAITS["DB_CONNECT_TIMEOUT"] + MARGIN
HEALTH_BUDGET = get_settings().HEALTH_CHECK_TIMEOUT + 0.5  # 2 s, and the HTTP round trip
POOL = get_settings().DB_POOL_SIZE + get_settings().DB_MAX_OVERFLOW


@dataclass(frozen=True)
class Setup:
    server: DedicatedServer
    app: ServedApp
    log: Path
    headers: dict[str, str]
    user_id: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    log = tmp_path_factory.mktemp("faults") / "uvicorn.log"
    with dedicated_server() as server:
        command.upgrade(alembic_config(server.url), "head")
        env = {name: str(value) for name, value in WAITS.items()}
        with served_app(server.url, log=log, **env) as app:
            signup = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
            user = httpx.post(f"{app.url}/api/v1/users", json=signup).json()
            form = {"username": signup["email"], "password": PASSWORD}
            token = httpx.post(f"{app.url}/api/v1/auth/token", data=form).json()["access_token"]
            yield Setup(server, app, log, {"Authorization": f"Bearer {token}"}, user["id"])


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    retry_after: str | None


async def timed(client: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> Answer:
    started = time.perf_counter()
    response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
    return Answer(response.status_code, time.perf_counter() - started, response.headers.get("retry-after"))


async def round_of_requests(s: Setup, concurrent: int) -> tuple[Answer, list[Answer], Answer]:
    """/health, then `concurrent` reads and writes at once (more than the pool holds), then /health."""
    async with httpx.AsyncClient(base_url=s.app.url, timeout=60) as client:
        health = await timed(client, "GET", "/api/v1/health")
        user = f"/api/v1/users/{s.user_id}"
        signup = {"email": "grace@example.com", "password": PASSWORD, "name": "Grace"}
        requests = [timed(client, "GET", user, headers=s.headers) for _ in range(concurrent)]
        requests += [
            timed(client, "POST", "/api/v1/users", json=signup),
            timed(client, "GET", "/api/v1/posts"),
        ]
        answers = await asyncio.gather(*requests)
        return health, list(answers), await timed(client, "GET", "/api/v1/health")


async def warm_pool(s: Setup) -> None:
    """Fill the pool with open connections, so that the fault meets pooled ones (and their ping)."""
    async with httpx.AsyncClient(base_url=s.app.url, timeout=30) as client:
        answers = await asyncio.gather(
            *[client.get(f"/api/v1/users/{s.user_id}", headers=s.headers) for _ in range(POOL)]
        )
        assert {a.status_code for a in answers} == {200}


async def recovered(s: Setup) -> Answer:
    """The same app process serves again, within a few seconds, with no restart of its own."""
    async with httpx.AsyncClient(base_url=s.app.url, timeout=30) as client:
        deadline = time.monotonic() + 10
        while (health := await timed(client, "GET", "/api/v1/health")).status != 200:
            assert time.monotonic() < deadline, "the app did not recover within 10 s"
            await asyncio.sleep(0.2)
        user = await timed(client, "GET", f"/api/v1/users/{s.user_id}", headers=s.headers)
        assert user.status == 200
        return health


def log_lines(s: Setup) -> list[str]:
    return s.log.read_text().splitlines()


# --8<-- [start:fault_tests]
@pytest.mark.system("a server of its own frozen with SIGSTOP under a served app")
@pytest.mark.pattern("HD04")
async def test_a_frozen_database_is_a_503_within_the_bounds_not_a_hang(setup: Setup) -> None:
    await warm_pool(setup)
    with setup.server.frozen():  # SIGSTOP to every server process; SIGCONT in its finally
        health, answers, health_after = await round_of_requests(setup, concurrent=POOL + 10)
    print(
        f"frozen: /health {health.seconds:.2f} s and {health_after.seconds:.2f} s, {len(answers)} requests: ",
        end="",
    )
    print(f"slowest {max(a.seconds for a in answers):.2f} s (bound {BOUND:g} s)")
    assert health.status == health_after.status == 503
    assert max(health.seconds, health_after.seconds) < HEALTH_BUDGET
    assert {a.status for a in answers} == {503}
    assert {a.retry_after for a in answers} == {"1"}
    assert max(a.seconds for a in answers) < BOUND
    await recovered(setup)


@pytest.mark.system("a server of its own stopped under a served app")
@pytest.mark.pattern("HD04")
async def test_a_stopped_database_is_a_503_at_once_not_a_500(setup: Setup) -> None:
    await warm_pool(setup)
    with setup.server.stopped():  # pg_ctl stop -m fast; started again in its finally
        health, answers, _ = await round_of_requests(setup, concurrent=POOL + 10)
    slowest = max(a.seconds for a in answers)
    print(f"stopped: /health {health.seconds:.3f} s, slowest of {len(answers)} requests {slowest:.3f} s")
    assert health.status == 503
    assert health.seconds < MARGIN  # no wait at all: the connection is refused at once
    assert {a.status for a in answers} == {503}
    assert {a.retry_after for a in answers} == {"1"}
    assert slowest < MARGIN
    await recovered(setup)


@pytest.mark.system("the served app's log across a database outage")
@pytest.mark.pattern("HD04")
async def test_each_503_is_one_line_in_the_log_without_a_traceback(setup: Setup) -> None:
    before = len(log_lines(setup))
    with setup.server.stopped():
        _, answers, _ = await round_of_requests(setup, concurrent=5)
    await recovered(setup)
    new = log_lines(setup)[before:]
    faults = [line for line in new if "database unavailable" in line]
    assert len(faults) == len(answers)  # one line per 503: no more, no less
    assert faults[0].endswith("-> 503 (ConnectionRefusedError: [Errno 111] Connection refused)")
    # over the module's whole log: the frozen and stopped tests' requests too
    errors = [n for n, line in enumerate(log_lines(setup)) if "Traceback" in line or "ERROR" in line]
    assert not errors, "\n".join(log_lines(setup)[errors[0] : errors[0] + 60])


# --8<-- [end:fault_tests]


# --8<-- [start:timeout_tests]
@pytest.mark.pattern("HD04")
async def test_postgresql_cancels_a_statement_past_the_statement_timeout(database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from example_app.api.errors import outage
    from example_app.core.config import Settings
    from example_app.core.database import create_engine

    engine = create_engine(Settings(DATABASE_URL=database_url, DB_STATEMENT_TIMEOUT=0.2))
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "200ms"
            assert await conn.scalar(text("SELECT current_setting('application_name')")) == "fastapi-ml-guide"
            started = time.perf_counter()
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("SELECT pg_sleep(5)"))
            assert time.perf_counter() - started < 1.0
        assert outage(caught.value) == ("QueryCanceledError: canceling statement due to statement timeout")
        async with engine.connect() as conn:  # the connection was not lost: the server cancelled
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


@pytest.mark.pattern("HD04")
async def test_a_full_pool_is_an_outage_and_a_bug_is_not(database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from example_app.api.errors import outage
    from example_app.core.config import Settings
    from example_app.core.database import create_engine

    settings = Settings(DATABASE_URL=database_url, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2)
    engine = create_engine(settings)
    try:
        async with engine.connect():  # the pool's only connection, held
            started = time.perf_counter()
            with pytest.raises(PoolTimeoutError) as full:
                await engine.connect()
            assert time.perf_counter() - started < 1.0
        assert outage(full.value) == "no free connection in the pool within DB_POOL_TIMEOUT"
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as bug:
                await conn.execute(text("SELECT 1 / 0"))
        assert outage(bug.value) is None  # a division by zero is not an outage: it stays a 500
    finally:
        await engine.dispose()


# --8<-- [end:timeout_tests]
