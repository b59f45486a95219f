"""The hot path: round trips per route, counted on the wire (PF01), and pooled connections that
the server kills (PF03).

The app runs as deployed (made by create_app, served by uvicorn on a loopback port from a thread
of this process, its own engine and pool, no override) on a database of its own, migrated and
seeded here, and reaches PostgreSQL through the proxy of tests/wire.py, which records every
round trip the app makes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings
from tests.support import bearer, path, scratch_database, served_in_thread, sync_url
from tests.wire import WireCounter


@dataclass(frozen=True)
class HotApp:
    http: httpx.Client  # to the served app
    wire: WireCounter  # between the app and PostgreSQL
    db: Engine  # the test's own connection to the app's database (psycopg, no pool)
    author: dict[str, str]  # headers of the posts' author
    root: dict[str, str]  # headers of a superuser
    author_id: int
    other_id: int  # an ordinary user who wrote nothing

    def post_ids(self, n: int) -> list[int]:
        """n new posts of the author, committed (for the routes that change or delete one)."""
        with self.db.begin() as conn:
            rows = conn.execute(
                text(
                    "INSERT INTO posts (title, slug, body, author_id) "
                    "SELECT 'Spare ' || g, 'spare-' || g, 'A spare post.', :author "
                    "FROM generate_series(1, :n) g "
                    "RETURNING id"
                ),
                {"author": self.author_id, "n": n},
            )
            return list(rows.scalars())


@pytest.fixture(scope="module")
def hot_url(database_url: str) -> Iterator[str]:
    """A database of the hot path's own, migrated: the served app commits what it writes."""
    with scratch_database(database_url, "hot", migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def hot_app(hot_url: str, password_hash: str, settings: Settings) -> Iterator[HotApp]:
    from example_app.core.security import create_access_token
    from example_app.main import create_app

    url = hot_url
    db = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with db.begin() as conn:
            ids = conn.execute(
                text(
                    "INSERT INTO users (email, hashed_password, name, is_superuser) VALUES "
                    "('author@example.com', :h, 'Author', false), ('other@example.com', :h, 'Other', false), "
                    "('root@example.com', :h, 'Root', true) RETURNING id"
                ),
                {"h": password_hash},
            ).scalars()
            author_id, other_id, root_id = ids
            conn.execute(
                text(
                    "INSERT INTO posts (title, slug, body, author_id) "
                    "SELECT 'Post ' || g, 'post-' || g, 'The body of post ' || g, :a "
                    "FROM generate_series(1, 30) g"
                ),
                {"a": author_id},
            )
        with (
            WireCounter(url) as wire,
            served_in_thread(create_app(settings.model_copy(update={"DATABASE_URL": wire.url}))) as base,
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            yield HotApp(
                http,
                wire,
                db,
                bearer(create_access_token(settings, author_id)),
                bearer(create_access_token(settings, root_id)),
                author_id,
                other_id,
            )
    finally:
        db.dispose()


# --- PF01: round trips per route -----------------------------------------------------------------

Send = Callable[[HotApp], httpx.Response]

# --8<-- [start:round_trips]
# What each route sends to PostgreSQL: one entry per round trip, once the connection has run
# the route before (its statements are prepared; see the Performance page). "SELECT users" on
# a route with a token is the caller's own row, read to check that the account is still active.
ROUND_TRIPS: dict[str, tuple[Send, int, list[str]]] = {
    "GET a post (with its author)": (
        lambda a: a.http.get(path("get_post", post_id=1)),
        200,
        ["SELECT posts JOIN users"],
    ),
    "GET a page of posts": (
        lambda a: a.http.get(path("list_posts"), params={"limit": 20}),
        200,
        ["SELECT posts"],
    ),
    "GET /health": (  # its SELECT 1 runs in a session of its own, which reads like the request's
        lambda a: a.http.get(path("health")),
        200,
        ["SELECT"],
    ),
    "GET a post that does not exist": (
        lambda a: a.http.get(path("get_post", post_id=999_999)),
        404,
        ["SELECT posts JOIN users"],
    ),
    "GET your own account": (  # the caller's row is the answer: no second read
        lambda a: a.http.get(path("get_user", user_id=a.author_id), headers=a.author),
        200,
        ["SELECT users"],
    ),
    "GET another account (a superuser)": (
        lambda a: a.http.get(path("get_user", user_id=a.other_id), headers=a.root),
        200,
        ["SELECT users", "SELECT users"],
    ),
    "GET another account (not yours)": (  # refused from the token alone: 404, not 403
        lambda a: a.http.get(path("get_user", user_id=a.other_id), headers=a.author),
        404,
        ["SELECT users"],
    ),
    "POST a post": (  # the post and its embedding job, in one transaction
        lambda a: a.http.post(path("create_post"), json={"title": "Hot", "body": "Path"}, headers=a.author),
        201,
        ["BEGIN", "SELECT users", "INSERT posts", "SELECT procrastinate_defer_jobs_v1", "COMMIT"],
    ),
    "PATCH a post's title": (  # read it (is the caller its author?), queue its embedding, change it
        lambda a: a.http.patch(
            path("update_post", post_id=a.post_ids(1)[0]), json={"title": "Renamed"}, headers=a.author
        ),
        200,
        [
            "BEGIN",
            "SELECT users",
            "SELECT posts",
            "SELECT procrastinate_defer_jobs_v1",
            "UPDATE posts",
            "COMMIT",
        ],
    ),
    "DELETE a post": (
        lambda a: a.http.delete(path("delete_post", post_id=a.post_ids(1)[0]), headers=a.author),
        204,
        ["BEGIN", "SELECT users", "SELECT posts", "DELETE posts", "COMMIT"],
    ),
}
# --8<-- [end:round_trips]


# --8<-- [start:round_trip_test]
@pytest.mark.pattern("PF01")
@pytest.mark.parametrize("route", ROUND_TRIPS)
def test_each_route_makes_the_round_trips_it_needs_and_no_more(hot_app: HotApp, route: str) -> None:
    send, status, expected = ROUND_TRIPS[route]
    assert send(hot_app).status_code == status  # the first time: the connection prepares
    with hot_app.wire.counting() as trips:
        response = send(hot_app)
    assert response.status_code == status, response.text
    assert [t.kind for t in trips] == expected, "\n".join(map(str, trips))
    assert not any(t.prepares for t in trips)  # each statement was prepared once, and reused


# --8<-- [end:round_trip_test]


@pytest.mark.pattern("PF01")
def test_a_read_never_fetches_the_password_hash_nor_the_embedding(hot_app: HotApp) -> None:
    with hot_app.wire.counting() as trips:
        for route in ("GET a post (with its author)", "GET a page of posts", "GET your own account"):
            ROUND_TRIPS[route][0](hot_app)
    sent = " ".join(t.sql for t in trips)
    assert "users.email" in sent  # the reads were seen...
    assert "hashed_password" not in sent  # ...and no column a response does not show
    assert "embedding" not in sent


@pytest.mark.pattern("PF01")
async def test_a_get_that_writes_fails_instead_of_committing_statement_by_statement() -> None:
    from example_app.core.config import get_settings
    from example_app.core.database import WITHOUT_TRANSACTION, WriteWithoutTransactionError, create_engine
    from example_app.models import User

    engine = create_engine(get_settings())  # the app's engine, with its listeners, in this loop
    try:
        # What get_db gives a GET: a session whose statements each run on their own.
        async with AsyncSession(engine, execution_options=WITHOUT_TRANSACTION) as session:
            session.add(User(email="never@example.com", name="Never", hashed_password="x"))
            with pytest.raises(WriteWithoutTransactionError):
                await session.commit()
    finally:
        await engine.dispose()


# --- PF03: connections the server ends -----------------------------------------------------------


def app_backends(app: HotApp) -> list[int]:
    with app.db.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).scalars()
        )


def terminate(app: HotApp, pids: list[int]) -> None:
    with app.db.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def burst(app: HotApp, n: int) -> list[int]:
    """n GETs of a post at once: the pool checks out up to n connections."""
    with ThreadPoolExecutor(n) as pool:
        return list(
            pool.map(lambda _: ROUND_TRIPS["GET a post (with its author)"][0](app).status_code, range(n))
        )


# --8<-- [start:killed_connections]
@pytest.mark.pattern("PF03")
def test_pooled_connections_killed_by_the_server_are_replaced_without_a_ping(hot_app: HotApp) -> None:
    assert burst(hot_app, 8) == [200] * 8  # several connections in the pool, idle
    killed = app_backends(hot_app)
    assert len(killed) >= 2
    terminate(hot_app, killed)  # what a restart, a failover or an idle timeout does to them
    with hot_app.wire.counting() as trips:
        after = [ROUND_TRIPS["GET a post (with its author)"][0](hot_app).status_code for _ in range(3)]
        after += burst(hot_app, 8)
    assert after == [200] * 11  # every request served: a dead connection is never handed out
    assert "(empty query: a ping)" not in {t.kind for t in trips}  # and nothing was pinged
    assert not set(killed) & set(app_backends(hot_app))  # the pool holds new connections


@pytest.mark.pattern("PF03")
def test_a_connection_lost_in_use_is_a_503_then_the_pool_recovers(hot_app: HotApp) -> None:
    get_post = ROUND_TRIPS["GET a post (with its author)"][0]
    assert get_post(hot_app).status_code == 200
    hot_app.wire.sever_next()  # the next statement's connection dies as it is sent
    failed = get_post(hot_app)
    assert failed.status_code == 503, failed.text  # said, with a retry hint; never a bare 500
    assert "Retry-After" in failed.headers
    assert [get_post(hot_app).status_code for _ in range(3)] == [200] * 3


# --8<-- [end:killed_connections]


def walked(router: Any, name: str) -> list[Any]:
    """Each dependency FastAPI walks for the route `name`, in order: a used one's tree each time."""
    from fastapi.routing import APIRoute

    def calls(dependant: Any) -> list[Any]:
        return [c for d in dependant.dependencies for c in (d.call, *calls(d))]

    [route] = [r for r in router.routes if isinstance(r, APIRoute) and r.name == name]
    return calls(route.dependant)


@pytest.mark.pattern("SV02")
def test_a_get_by_id_resolves_two_dependencies_the_session_and_its_service() -> None:
    # Each dependency FastAPI resolves costs CPU on every request: the hot read asks for what it
    # uses and no more (get_db reads the app's resources itself, not through ResourcesDep).
    from example_app.api.dependencies import get_db, get_post_service
    from example_app.api.routes.posts import router

    assert walked(router, "get_post") == [get_post_service, get_db]


@pytest.mark.pattern("SV02", "LC03")
def test_a_prediction_walks_the_models_tree_once() -> None:
    # FastAPI walks a dependency's tree again at each use (the value is cached, the walk is not).
    # The shadow provider takes no model, whose tree holds the caller's, and providers read the
    # app's state themselves, not through ResourcesDep or SettingsDep: 18 walks, not 40.
    from example_app.api.dependencies import get_digits_model, get_shadow, require_active_user
    from example_app.api.routes.predictions import router

    for name in ("predict", "predict_batch"):
        walks = walked(router, name)
        assert walks.count(get_shadow) == walks.count(get_digits_model) == 1
        assert walks.count(require_active_user) == 2  # the router's guard; the canary's caller
        assert len(walks) == 18


# --- PF04: the pool's queue ----------------------------------------------------------------------


# --8<-- [start:fair_pool_tests]
@pytest.mark.pattern("PF04")
async def test_a_returned_connection_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    import asyncio

    from sqlalchemy.util.concurrency import greenlet_spawn
    from sqlalchemy.util.queue import Empty

    from example_app.core.database import FairQueue

    queue = FairQueue(maxsize=3)  # what the pool keeps its free connections in
    connections: list[Any] = [object(), object(), object()]
    served: list[tuple[int, Any]] = []

    async def request(n: int) -> None:  # the pool calls get() from SQLAlchemy's greenlet
        served.append((n, await greenlet_spawn(queue.get, True, 5.0)))

    waiting = []
    for n in range(3):  # three requests queue, in this order
        waiting.append(asyncio.create_task(request(n)))
        await asyncio.sleep(0.01)
    for connection in connections:
        queue.put_nowait(connection)  # a connection comes back...
        with pytest.raises(Empty):  # ...and a request arriving now cannot have it: it is owed
            queue.get(block=False)
    await asyncio.gather(*waiting)
    assert served == list(enumerate(connections))


@pytest.mark.pattern("PF04")
async def test_a_request_that_gives_up_waiting_leaves_the_pool_whole() -> None:
    import asyncio

    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from example_app.core.config import get_settings
    from example_app.core.database import create_engine

    settings = get_settings().model_copy(
        update={"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0, "DB_POOL_TIMEOUT": 0.05}
    )
    engine = create_engine(settings)
    try:
        async with engine.connect():
            with pytest.raises(PoolTimeoutError):  # timed out in the queue (a 503 in the app)
                async with engine.connect():
                    pass
            cancelled = asyncio.create_task(engine.connect().start())
            await asyncio.sleep(0.01)
            cancelled.cancel()  # a client that went away while waiting
        async with engine.connect() as conn:  # the connection is free again, at once
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


# --8<-- [end:fair_pool_tests]
