"""The reference app's own hot path, measured (PF02, PF03, PF04): every figure from one run.

1. The app's routes against the same SQL elsewhere. The real app (example_app.main.create_app) under
   uvicorn, 1 worker on loopback, and small apps that run the very SQL the app sends (captured
   from the app's services at the start of the run): raw asyncpg, and a sync Session in a `def`
   route and in an `async def` route (the original guide). `wrk` loads each with `connections`
   clients on three reads: a post by id (public), a page of posts, and a user's own account
   (with a bearer token).
2. The ladder, on the post by id: from the original pattern to the app, one change at a time.
   The steps between are the app with what the hot-path work changed put back (pre-ping, a
   transaction around reads, every column and a second SELECT for the author, `def` providers),
   one override each (bench/hot_path_apps.py). Beside it, options of the app: the prepared
   statement cache off, asyncio + h11 instead of uvloop + httptools, uvicorn's access log on.
3. PF04: while `connections` clients run a 20 ms query through the app's session, one client
   reads a post by id every 10 ms: the p99 of that cheap request, and of the same with no load.
4. In process: what building a response costs, three ways (microseconds per response).

Every server is booted before anything is measured; each (server, route) pair gets `seconds`
of load per round, the order reversing every round, so that background load on the machine
weighs on every pair alike: the ratios within a run are what count. The machine's load average
at the start is recorded with the figures. Data lives in a scratch database (BENCH_DATABASE_URL,
else a throwaway server), migrated by Alembic.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.decision6 import parse_wrk
from bench.hot_path_apps import LEVERS, RELEASE
from bench.servers import Uvicorn
from devtools.postgres_provider import provide

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORD = RESULTS / "hot_path.txt"
RECORD_JSON = RESULTS / "hot_path.json"  # what the guide's chart is drawn from at build time
PREFIX = "/api/v1"
USERS = 1_000
POSTS = 1_000
TOKENS = 200  # users the authenticated load signs in as
PROBE_EVERY_MS = 10
# PF04 paced: each slow connection pauses this long between its requests (on average: at random
# from none to twice this), so that the same 32 connections leave the worker's core room to
# spare (the line under part 3 says how much).
PACE_MS = 160
GOAL_RAW_RATIO = 0.5  # PF02: GET by id at least half of raw asyncpg's throughput
GOAL_SYNC_RATIO = 1.5  # ... and 1.5 times both sync patterns'
UNFAIR_LABEL = "same, with SQLAlchemy's own pool queue"
PACED_LABEL = "with the slow load paced"
GOAL_P99_MS = 50.0  # PF04: the cheap request's p99 while 20 ms queries are in flight
ALL_ROUTES = ("by-id", "list", "auth")


@dataclass(frozen=True)
class Route:
    key: str
    label: str
    lua: str  # the body of wrk's request function; `tokens` and `ids` are defined for it


ROUTES = {
    "by-id": Route(
        "by-id",
        "GET /posts/{id} (with its author)",
        f'return wrk.format("GET", "{PREFIX}/posts/" .. math.random(1, {POSTS}))',
    ),
    "list": Route(
        "list",
        "GET /posts (a page of 20)",
        f'return wrk.format("GET", "{PREFIX}/posts?limit=20&skip=" .. math.random(0, 50))',
    ),
    "auth": Route(
        "auth",
        "GET /users/{id} (own, with a token)",
        "local i = math.random(1, #ids)\n"
        f'  return wrk.format("GET", "{PREFIX}/users/" .. ids[i], {{["Authorization"] = tokens[i]}})',
    ),
    "slow": Route("slow", "GET /bench/slow (a 20 ms query)", 'return wrk.format("GET", "/bench/slow")'),
}


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    env: dict[str, str]
    routes: tuple[str, ...] = ("by-id",)
    uvicorn: tuple[str, ...] = ("--no-access-log",)


def _app(*restore: str, **env: str) -> dict[str, str]:
    """The app, with the levers named put back as they were (bench/hot_path_apps.py)."""
    return {"BENCH_VARIANT": "app", "BENCH_RESTORE": ",".join(restore), **env}


def SMALL(variant: str) -> dict[str, str]:  # noqa: N802 (reads like the table it is in)
    return {"BENCH_VARIANT": variant}


# --8<-- [start:variants]
# Each step of the ladder is the app with the levers after it put back (bench/hot_path_apps.py).
VARIANTS = (
    Variant("original", "async def + sync Session (the original)", SMALL("async-sync-session"), ALL_ROUTES),
    Variant("def-sync", "def + sync Session", SMALL("def-sync-session"), ALL_ROUTES),
    Variant("before", "the app before this work", _app(*LEVERS)),
    Variant("fair", "+ a fair pool queue", _app(*LEVERS[1:])),
    Variant("no-ping", "+ no pre-ping (closed-socket check)", _app(*LEVERS[2:])),
    Variant("no-tx", "+ reads without a transaction", _app(*LEVERS[3:])),
    Variant("columns", "+ response columns only, one query", _app(*LEVERS[4:])),
    Variant("async-deps", "+ async providers", _app(*LEVERS[5:])),
    Variant("built-once", "+ statements built once", _app(*LEVERS[6:])),
    Variant("app", "+ rows, not ORM objects: the app", _app(), ALL_ROUTES),
    Variant("raw", "raw asyncpg, same SQL", SMALL("raw-asyncpg"), ALL_ROUTES),
    Variant("asyncsession", "AsyncSession, text SQL (Decision 6)", SMALL("async-asyncsession")),
    Variant("unfair", "the app, SQLAlchemy's own pool queue", _app("fair_pool")),
    Variant("no-cache", "the app, statement cache off", _app(DB_STATEMENT_CACHE_SIZE="0")),
    Variant(
        "h11",
        "the app on asyncio + h11",
        _app(),
        uvicorn=("--no-access-log", "--loop", "asyncio", "--http", "h11"),
    ),
    Variant("access-log", "the app with the access log", _app(), uvicorn=()),
)
LADDER = (
    "original",
    "def-sync",
    "before",
    "fair",
    "no-ping",
    "no-tx",
    "columns",
    "async-deps",
    "built-once",
    "app",
)
OPTIONS = ("unfair", "no-cache", "h11", "access-log")  # each against the app
# --8<-- [end:variants]


@dataclass
class Measure:
    variant: str
    route: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # the server's CPU time per request (all its threads), in ms


@dataclass
class Probe:
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Results:
    postgres: str
    seconds: int
    connections: int
    rounds: int
    load_average: float  # the machine's 1-minute load average when the run started
    round_trips: dict[str, int] = field(default_factory=dict)  # statements per read, captured
    measures: list[Measure] = field(default_factory=list)
    slow_per_s: float = 0.0  # PF04: the 20 ms route's throughput meanwhile
    slow_errors: int = 0
    slow_cpu: float = 0.0  # the server's CPU time meanwhile, as a share of one core
    loaded: Probe | None = None  # PF04: the cheap request under the slow load
    loaded_unfair: Probe | None = None  # ... on the step before the fair pool queue
    loaded_paced: Probe | None = None  # ... under the same connections, paced (PACE_MS)
    paced_per_s: float = 0.0
    paced_cpu: float = 0.0
    idle: Probe | None = None  # ... and with no load
    serialization_us: dict[str, dict[str, float]] = field(default_factory=dict)

    def get(self, variant: str, route: str = "by-id") -> Measure | None:
        return next((m for m in self.measures if m.variant == variant and m.route == route), None)


# --- the database, and the SQL the app sends ------------------------------------------------------


def _sql(database_url: str, *statements: str) -> str:
    """Run statements on the scratch database; return the server's version ("PostgreSQL 16.4")."""
    import asyncpg

    async def go() -> str:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            for statement in statements:
                await conn.execute(statement)
            return "PostgreSQL " + str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(go())


def seed(database_url: str) -> str:
    """Migrate, then users and posts as the app would hold them (bodies, tags, embeddings)."""
    from alembic.config import Config

    from alembic import command
    from example_app.ml.embedding import DIMENSIONS

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    command.upgrade(cfg, "head")
    return _sql(
        database_url,
        "TRUNCATE users, posts RESTART IDENTITY CASCADE",
        "INSERT INTO users (email, hashed_password, name) SELECT 'bench' || g || '@example.com', "
        f"'$argon2id$not-a-real-hash', 'Bench ' || g FROM generate_series(1, {USERS}) g",
        "INSERT INTO posts (title, slug, body, author_id, tags, embedding) "
        "SELECT 'Post number ' || g, 'post-number-' || g, repeat('Some words of a post body. ', 20), "
        f'1 + g % {USERS}, \'["bench", "hot path"]\'::jsonb, '
        f"e.v FROM generate_series(1, {POSTS}) g, LATERAL (SELECT array_agg(random())::vector AS v "
        f"FROM generate_series(1, {DIMENSIONS}) WHERE g > 0) e",
        "ANALYZE users, posts",
    )


async def capture_sql(database_url: str) -> dict[str, dict[str, Any]]:
    """The statement each read of the app sends, with its parameters, from the app's own services.

    Marker values show which parameter is the id, the skip and the limit; the small apps put the
    request's values there. Also checks that each read is one statement (PF01).
    """
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.core.config import load_settings
    from example_app.core.database import WITHOUT_TRANSACTION, create_engine
    from example_app.core.security import Passwords
    from example_app.services.errors import NotFoundError
    from example_app.services.post import PostService
    from example_app.services.user import UserService

    settings = load_settings(DATABASE_URL=database_url)
    engine = create_engine(settings)
    passwords = Passwords.from_settings(settings)  # the service needs one; a read hashes nothing
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    sent: list[tuple[str, list[Any]]] = []

    def record(conn: object, cursor: object, statement: str, parameters: Any, *args: object) -> None:
        sent.append((statement, list(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    marks = {"id": 424_242, "skip": 31_337, "limit": 17}
    reads: dict[str, Callable[[AsyncSession], Any]] = {
        "get_post": lambda s: PostService(s).get_with_author(marks["id"]),
        "list_posts": lambda s: PostService(s).list_posts(skip=marks["skip"], limit=marks["limit"]),
        "get_user": lambda s: UserService(s, passwords).get(marks["id"]),
    }
    queries: dict[str, dict[str, Any]] = {}
    try:
        for name, read in reads.items():
            sent.clear()
            async with sessions(execution_options=WITHOUT_TRANSACTION) as session:
                with suppress(NotFoundError):
                    await read(session)
            if len(sent) != 1:
                raise SystemExit(f"bench: the app's {name} sent {len(sent)} statements, not 1")
            statement, params = sent[0]
            slots = {mark: params.index(value) for mark, value in marks.items() if value in params}
            queries[name] = {"sql": statement, "params": params, "slots": slots}
    finally:
        await engine.dispose()
    return queries


# --- the servers ----------------------------------------------------------------------------------


class Server(Uvicorn):
    """One variant under uvicorn; started early, so that all of them boot side by side."""

    def __init__(self, variant: Variant, env: dict[str, str], logs: Path) -> None:
        self.variant = variant
        super().__init__(
            "bench.hot_path_apps:create_app --factory",
            {**env, **variant.env},
            args=variant.uvicorn,
            log=logs / f"{variant.key}.log",
            output_to_log="--no-access-log" in variant.uvicorn,  # an access log is thrown away
        )

    def wait_ready(self, path: str = f"{PREFIX}/posts/1", what: str = "", timeout: float = 180) -> None:
        super().wait_ready(path, what or f"the {self.variant.key!r} server", timeout)

    def release(self) -> None:
        """Close the server's idle connections (its turn is over; the others need theirs)."""
        response = httpx.post(f"{self.base}{RELEASE}", timeout=30)
        if response.status_code != 200:
            raise SystemExit(f"bench: {self.variant.key} could not release its connections: {response.text}")


def lua_script(route: Route, tokens: Sequence[tuple[int, str]], pause_ms: int = 0) -> str:
    ids = ", ".join(str(user_id) for user_id, _ in tokens)
    values = ", ".join(json.dumps(f"Bearer {token}") for _, token in tokens)
    script = f"ids = {{{ids}}}\ntokens = {{{values}}}\nrequest = function()\n  {route.lua}\nend\n"
    if pause_ms:  # wrk calls delay() before each request; random, or the connections keep in step
        script += f"delay = function()\n  return math.random(0, {2 * pause_ms})\nend\n"
    return script


def wrk(base: str, script: Path, connections: int, seconds: int) -> str:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
    ]
    done = subprocess.run([*cmd, base], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout


@dataclass
class Tally:
    server: Server
    route: str
    requests: float = 0.0  # answered, over the rounds
    rates: list[float] = field(default_factory=list)  # req/s, per round
    cpu: float = 0.0
    errors: int = 0
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)

    def measure(self, script: Path, connections: int, seconds: int) -> None:
        before = self.server.cpu_seconds()
        rps, p50, p99, errors = parse_wrk(wrk(self.server.base, script, connections, seconds))
        self.rates.append(rps)
        self.cpu += self.server.cpu_seconds() - before  # wrk's in-flight tail included, as it runs
        self.requests += rps * seconds
        self.errors += errors
        self.p50.append(p50)
        self.p99.append(p99)

    def result(self) -> Measure:
        return Measure(
            self.server.variant.key,
            self.route,
            statistics.mean(self.rates) if self.rates else 0.0,
            statistics.median(self.p50),
            statistics.median(self.p99),
            self.errors,
            self.cpu * 1000 / self.requests if self.requests else 0.0,
        )


class CheapProbe(threading.Thread):
    """The unrelated request: GET a post by id on one keep-alive connection, PROBE_EVERY_MS
    after each answer; every latency kept."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.address = urlsplit(base)
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._done = threading.Event()

    def run(self) -> None:
        connection = None
        n = 0
        while not self._done.wait(PROBE_EVERY_MS / 1000):
            n += 1
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.address.hostname or "127.0.0.1", self.address.port, timeout=30
                )
            started = time.perf_counter()
            try:
                connection.request("GET", f"{PREFIX}/posts/{1 + n % POSTS}")
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = None
                continue
            if response.status == 200:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.errors += 1
        if connection is not None:
            connection.close()

    def stop(self) -> Probe:
        self._done.set()
        self.join()
        return Probe(
            percentile(self.latencies_ms, 50),
            percentile(self.latencies_ms, 99),
            len(self.latencies_ms),
            self.errors,
        )


def percentile(samples: Sequence[float], p: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


# --- 4. serialization, in process -------------------------------------------------------------------


async def serialization_us(database_url: str, repeat: int = 2_000) -> dict[str, dict[str, float]]:
    """Microseconds per response: the app's way (response_model over what the service returns: a
    page's rows, a post's schema built from its row), the route building the schemas first, and
    FastAPI's path without a response_model (jsonable_encoder)."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.routing import APIRoute, serialize_response
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.api.routes import posts
    from example_app.core.config import load_settings
    from example_app.core.database import create_engine
    from example_app.schemas.post import PostResponse, PostWithAuthor
    from example_app.services.post import PostService

    engine = create_engine(load_settings(DATABASE_URL=database_url))
    try:
        async with async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)() as session:
            post = await PostService(session).get_with_author(1)
            page = list(await PostService(session).list_posts(skip=0, limit=20))
    finally:
        await engine.dispose()
    fields = {r.name: r.response_field for r in posts.router.routes if isinstance(r, APIRoute)}

    async def as_app(value: Any, name: str) -> bytes:
        return bytes(await serialize_response(field=fields[name], response_content=value, dump_json=True))

    def schema(value: Any) -> Any:
        if isinstance(value, list):
            return [PostResponse.model_validate(v) for v in value]
        return PostWithAuthor.model_validate(value)

    def encoder(value: Any) -> bytes:  # FastAPI without response_model: JSONResponse(jsonable_encoder(...))
        return json.dumps(jsonable_encoder(schema(value)), separators=(",", ":")).encode()

    out: dict[str, dict[str, float]] = {}
    for label, value, name in (
        ("a post with its author", post, "get_post"),
        ("a page of 20 posts", page, "list_posts"),
    ):

        async def returning_result(v: Any = value, n: str = name) -> None:
            await as_app(v, n)

        async def returning_schema(v: Any = value, n: str = name) -> None:
            await as_app(schema(v), n)

        def encoded(v: Any = value) -> None:
            encoder(v)

        ways: dict[str, Callable[[], Any]] = {
            "response_model over the service's rows (the app)": returning_result,
            "response_model, the route builds the schemas first": returning_schema,
            "no response_model: jsonable_encoder": encoded,
        }
        out[label] = {}
        for way, call in ways.items():

            async def timed(call: Callable[[], Any] = call) -> float:
                started = time.perf_counter()
                for _ in range(repeat):
                    result = call()
                    if asyncio.iscoroutine(result):
                        await result
                return (time.perf_counter() - started) / repeat * 1e6

            await timed()  # warm-up
            out[label][way] = min([await timed() for _ in range(3)])
    return out


# --- the run -----------------------------------------------------------------------------------------


def run(
    seconds: int = 5,
    connections: int = 32,
    rounds: int = 2,
    warmup: int = 2,
    variants: Sequence[Variant] = VARIANTS,
    pf04_seconds: int | None = None,
    serialization_repeat: int = 2_000,
) -> Results:
    """Every comparison, in one run. `variants` must include the app."""
    if not any(v.key == "app" for v in variants):
        raise ValueError("the variants must include the app")
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (apt install wrk)")
    load_average = os.getloadavg()[0]
    with (
        provide("BENCH_DATABASE_URL", dbname="bench") as server,
        tempfile.TemporaryDirectory() as tmp,
        ExitStack() as servers,
    ):
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        # The servers' settings (from their environment) and the tokens' share the key.
        from example_app.core.config import load_settings

        settings = load_settings(DATABASE_URL=server.url, SECRET_KEY=secrets.token_urlsafe(32))
        assert settings.SECRET_KEY is not None
        postgres = seed(server.url)
        queries = asyncio.run(capture_sql(server.url))
        env = {
            "DATABASE_URL": server.url,
            "SECRET_KEY": settings.SECRET_KEY.get_secret_value(),
            "BENCH_SQL": json.dumps(queries),
        }
        started = []
        for variant in variants:
            started.append(Server(variant, env, Path(tmp)))
            servers.callback(started[-1].stop)
        for each in started:
            each.wait_ready()
        results = Results(postgres, seconds, connections, rounds, load_average)
        results.round_trips = {name: 1 for name in queries}  # capture_sql refuses anything else

        from example_app.core.security import create_access_token

        tokens = [(i, create_access_token(settings, i, timedelta(hours=6))) for i in range(1, TOKENS + 1)]
        scripts = {}
        for route in ROUTES.values():
            scripts[route.key] = Path(tmp) / f"{route.key}.lua"
            scripts[route.key].write_text(lua_script(route, tokens))
        scripts["paced"] = Path(tmp) / "paced.lua"
        scripts["paced"].write_text(lua_script(ROUTES["slow"], tokens, PACE_MS))
        tallies = [Tally(s, route) for s in started for route in s.variant.routes]
        for each in started:  # the readiness checks opened connections
            each.release()
        for tally in tallies:
            if warmup:  # code paths hot (each turn starts with a warm-up second too)
                wrk(tally.server.base, scripts[tally.route], connections, warmup)
                tally.server.settle()
                tally.server.release()
        for round_ in range(rounds):
            for tally in tallies if round_ % 2 == 0 else tallies[::-1]:
                wrk(tally.server.base, scripts[tally.route], connections, 1)  # the pool fills again
                tally.measure(scripts[tally.route], connections, seconds)
                tally.server.settle()
                tally.server.release()
                m = tally.result()
                print(
                    f"  {m.variant:12} {m.route:6} round {round_ + 1}: {m.requests_per_s:7.0f} req/s "
                    f"p99 {m.p99_ms:6.1f} ms",
                    file=sys.stderr,
                )
        results.measures = [t.result() for t in tallies]

        # --8<-- [start:pf04]
        # 3. PF04: the cheap request while 32 connections run a 20 ms query, then alone; and the
        # same load on the app with SQLAlchemy's own pool queue, when it is measured.
        app = next(s for s in started if s.variant.key == "app")
        unfair = next((s for s in started if s.variant.key == "unfair"), None)
        for other in started:
            if other not in (app, unfair):
                other.stop()
        load_seconds = pf04_seconds or 2 * seconds

        def under_slow_load(server: Server, script: str = "slow") -> tuple[Probe, float, int, float]:
            probe = CheapProbe(server.base)
            cpu, started = server.cpu_seconds(), time.monotonic()
            probe.start()
            rps, _, _, errors = parse_wrk(wrk(server.base, scripts[script], connections, load_seconds))
            busy = (server.cpu_seconds() - cpu) / (time.monotonic() - started)  # share of a core
            cheap = probe.stop()
            server.settle()
            server.release()
            return cheap, rps, errors, busy

        results.loaded, results.slow_per_s, results.slow_errors, results.slow_cpu = under_slow_load(app)
        # The same connections, each pausing between requests: the core has room to spare.
        results.loaded_paced, results.paced_per_s, paced_errors, results.paced_cpu = under_slow_load(
            app, "paced"
        )
        results.slow_errors += paced_errors
        if unfair is not None:
            results.loaded_unfair = under_slow_load(unfair)[0]
        probe = CheapProbe(app.base)
        probe.start()
        time.sleep(load_seconds)
        results.idle = probe.stop()
        # --8<-- [end:pf04]
        servers.close()
        results.serialization_us = asyncio.run(serialization_us(server.url, serialization_repeat))
    return results


# --- the report -------------------------------------------------------------------------------------


def _x(value: float, base: float) -> str:
    return f"{value / base:5.2f}x" if base else "    -"


def goals(results: Results) -> list[str]:
    app, raw = results.get("app"), results.get("raw")
    lines = []
    if app and raw:
        ratio = app.requests_per_s / raw.requests_per_s if raw.requests_per_s else 0.0
        verdict = "met" if ratio >= GOAL_RAW_RATIO else "NOT met"
        lines.append(f"Goal (GET by id at least {GOAL_RAW_RATIO}x raw asyncpg): {verdict}, {ratio:.2f}x")
    for key in ("def-sync", "original"):
        other = results.get(key)
        if app and other and other.requests_per_s:
            ratio = app.requests_per_s / other.requests_per_s
            verdict = "met" if ratio >= GOAL_SYNC_RATIO else "NOT met"
            label = next(v.label for v in VARIANTS if v.key == key)
            lines.append(f"Goal (GET by id at least {GOAL_SYNC_RATIO}x {label}): {verdict}, {ratio:.2f}x")
    for probe, how in (
        (results.loaded, f"the core {results.slow_cpu:.0%} busy"),
        (results.loaded_paced, f"paced, the core {results.paced_cpu:.0%} busy"),
    ):
        if probe:
            verdict = "met" if probe.p99_ms < GOAL_P99_MS else "NOT met"
            lines.append(
                f"Goal (cheap request p99 under {GOAL_P99_MS:.0f} ms with {results.connections} connections "
                f"in 20 ms queries, {how}): {verdict}, {probe.p99_ms:.1f} ms"
            )
    return lines


def report(results: Results) -> str:
    labels = {v.key: v.label for v in VARIANTS}
    lines = [
        f"The reference app's hot path: 1 uvicorn worker per server, wrk -t1 -c{results.connections}; "
        f"{results.rounds} rounds of {results.seconds} s per server and route, in alternating order",
        "",
        "1. The app's routes, and the same SQL served without it (req/s; app/x: the app's ratio)",
        "",
        f"{'route':36} {'app':>7} {'raw':>7} {'app/raw':>8} {'def+sync':>9} {'app/def':>8} "
        f"{'original':>9} {'app/orig':>9}",
    ]
    for route in ALL_ROUTES:
        app, raw, sync, orig = (results.get(k, route) for k in ("app", "raw", "def-sync", "original"))
        if app is None:
            continue

        def cell(m: Measure | None, width: int) -> str:
            return f"{m.requests_per_s:{width}.0f}" if m else " " * (width - 1) + "-"

        def ratio(m: Measure | None, app: Measure = app) -> str:
            return _x(app.requests_per_s, m.requests_per_s) if m else "    -"

        lines.append(
            f"{ROUTES[route].label:36} {app.requests_per_s:7.0f} {cell(raw, 7)} {ratio(raw):>8} "
            f"{cell(sync, 9)} {ratio(sync):>8} {cell(orig, 9)} {ratio(orig):>9}"
        )
    lines += [
        "",
        f"2. The ladder: {ROUTES['by-id'].label}, from the original pattern to the app",
        "",
        f"{'step':40} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU/req':>8} {'errors':>6} "
        f"{'vs prev':>8} {'vs raw':>7}",
    ]
    raw = results.get("raw")
    previous: Measure | None = None
    for key in (*LADDER, "raw", "asyncsession"):
        m = results.get(key)
        if m is None:
            continue
        step = _x(m.requests_per_s, previous.requests_per_s) if previous and key in LADDER else "     "
        lines.append(
            f"{labels[key]:40} {m.requests_per_s:7.0f} {m.p50_ms:7.1f} {m.p99_ms:7.1f} {m.cpu_ms:5.2f} ms "
            f"{m.errors:6d} {step:>8} {_x(m.requests_per_s, raw.requests_per_s) if raw else '    -':>7}"
        )
        previous = m if key in LADDER else previous
    app = results.get("app")
    options = [(key, results.get(key)) for key in OPTIONS]
    if app and any(m for _, m in options):
        lines += [
            "",
            f"{'option (GET by id)':40} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU/req':>8} "
            f"{'errors':>6} {'vs app':>8}",
        ]
        for key, m in options:
            if m is not None:
                lines.append(
                    f"{labels[key]:40} {m.requests_per_s:7.0f} {m.p50_ms:7.1f} {m.p99_ms:7.1f} "
                    f"{m.cpu_ms:5.2f} ms {m.errors:6d} {_x(m.requests_per_s, app.requests_per_s):>8}"
                )
    lines += [
        "",
        "CPU/req: the server's own CPU time per request (all its threads): the steadiest figure "
        "on a busy machine.",
    ]
    if results.loaded and results.idle:
        lines += [
            "",
            f"3. A cheap request while slow ones run: one client GETs a post every {PROBE_EVERY_MS} ms while "
            f"{results.connections} connections run a 20 ms query through the app's session",
            "",
            f"{'cheap request':40} {'p50 ms':>7} {'p99 ms':>7} {'(n)':>6} {'errors':>6}",
            f"{'with the slow load':40} {results.loaded.p50_ms:7.1f} {results.loaded.p99_ms:7.1f} "
            f"{results.loaded.requests:6d} {results.loaded.errors:6d}",
            *(
                [f"{UNFAIR_LABEL:40} {u.p50_ms:7.1f} {u.p99_ms:7.1f} {u.requests:6d} {u.errors:6d}"]
                if (u := results.loaded_unfair)
                else []
            ),
            *(
                [f"{PACED_LABEL:40} {q.p50_ms:7.1f} {q.p99_ms:7.1f} {q.requests:6d} {q.errors:6d}"]
                if (q := results.loaded_paced)
                else []
            ),
            f"{'alone':40} {results.idle.p50_ms:7.1f} {results.idle.p99_ms:7.1f} "
            f"{results.idle.requests:6d} {results.idle.errors:6d}",
            f"the slow route meanwhile: {results.slow_per_s:.0f} req/s, {results.slow_errors} errors; "
            f"the server's CPU: {results.slow_cpu:.0%} of a core",
            f"paced, each connection pausing {PACE_MS} ms between requests: {results.paced_per_s:.0f} req/s; "
            f"the server's CPU: {results.paced_cpu:.0%} of a core",
        ]
    if results.serialization_us:
        lines += ["", "4. Building the response, in process (microseconds per response)", ""]
        kinds = list(results.serialization_us)
        lines.append(f"{'way':62}" + "".join(f" {k:>24}" for k in kinds))
        ways = list(next(iter(results.serialization_us.values())))
        for way in ways:
            lines.append(
                f"{way:62}" + "".join(f" {results.serialization_us[k][way]:21.1f} us" for k in kinds)
            )
    lines += ["", *goals(results)]
    return "\n".join(lines)


def main(seconds: int = 5, connections: int = 32, record: bool = False) -> None:
    results = run(seconds, connections)
    text = report(results)
    print(text)
    data = json.dumps(
        {
            "recorded": time.strftime("%Y-%m-%d"),
            "cores": os.cpu_count(),
            "niceness": os.nice(0),
            "labels": {v.key: v.label for v in VARIANTS},
            "ladder": list(LADDER),
            "options": list(OPTIONS),
            "goal_raw_ratio": GOAL_RAW_RATIO,
            "goal_p99_ms": GOAL_P99_MS,
            "pace_ms": PACE_MS,
            **asdict(results),
        },
        indent=2,
    )
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "bench-hot-path.json").write_text(data + "\n")
    if record:  # the figures the guide shows: a dated run, with the machine it ran on
        header = (
            f"# python3 tasks.py bench --name hot-path --record, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores (load average {results.load_average:.2f} at start"
            f"{f', niceness {os.nice(0)}' if os.nice(0) else ''}), "
            f"{results.postgres}, wrk -t1 -c{connections} -d{seconds}s"
        )
        RESULTS.mkdir(exist_ok=True)

        # A named section, so the guide includes it like any other live snippet (the marker is
        # built from parts: this file itself must not look like it holds a section).
        def section(name: str, body: str) -> str:
            marker = "# --8<" + "-- [{}:" + name + "]"
            return f"{marker.format('start')}\n{header}\n{body}\n{marker.format('end')}\n"

        routes = text.split("\n\n2. ", 1)[0]  # the app's routes beside the same SQL: Decision 6 shows it
        RECORD.write_text(
            "# The figures docs/performance.md and docs/decisions/async.md show; rewrite with --record.\n"
            + section("hot_path", text)
            + section("app_routes", routes)
        )
        RECORD_JSON.write_text(data + "\n")
