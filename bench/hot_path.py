"""The app's hot path (PF02, PF04) beside its library's floors (bench/patterns.py), its options,
and a cheap request's latency beside slow queries, in one run. Explained on docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx

from bench import harness as h
from bench.patterns import Read
from example_app.api.dependencies import SessionDep  # at the top: FastAPI reads the route's annotations

if TYPE_CHECKING:
    from fastapi import FastAPI

USERS, POSTS, TOKENS = 1_000, 1_000, 200
GOALS = {"core": 0.9, "raw-asyncpg": 0.45}  # the app's req/s at least this share of the floor's
GOAL_P99_MS = 50.0  # PF04: the cheap request's p99 while 20 ms queries are in flight
PACE_MS = 160  # PF04 paced: each slow connection pauses 0 to 2 x this between its requests
ALL = ("by-id", "list", "auth")


def loads(tokens: list[str]) -> dict[str, h.Load]:
    own = f'"{h.PREFIX}/users/" .. ids[i], {{["Authorization"] = tokens[i]}}'
    given = f"ids = {h.lua_table(list(range(1, len(tokens) + 1)))}\ntokens = {h.lua_table(tokens)}\n"
    return {
        "by-id": h.get(
            "GET /posts/{id} (with its author)", f'"{h.PREFIX}/posts/" .. math.random(1, {POSTS})'
        ),
        "list": h.get(
            "GET /posts (a page of 20)", f'"{h.PREFIX}/posts?limit=20&skip=" .. math.random(0, 50)'
        ),
        "auth": h.Load(
            "GET /users/{id} (own, with a token)",
            lua=f"{given}request = function()\n  local i = math.random(1, #ids)\n"
            f'  return wrk.format("GET", {own})\nend',
        ),
    }


# --8<-- [start:variants]
def variants(reads: list[Read]) -> list[h.Variant]:
    def pattern(name: str, served: tuple[str, ...] = ALL) -> h.Variant:
        env = {"BENCH_PATTERN": name, "BENCH_READS": json.dumps([r.env() for r in reads])}
        return h.Variant(name, env, "bench.patterns:create_app", loads=served)

    return [
        h.Variant("app", loads=ALL),
        pattern("core"),
        pattern("driver", ("by-id",)),
        pattern("raw-asyncpg"),
        pattern("async-session", ("by-id",)),
        pattern("def-sync-session"),
        pattern("async-sync-session"),
        h.Variant("app, statement cache off", {"DB_STATEMENT_CACHE_SIZE": "0"}, loads=("by-id",)),
        h.Variant(
            "app on asyncio + h11",
            args=("--no-access-log", "--loop", "asyncio", "--http", "h11"),
            loads=("by-id",),
        ),
        h.Variant("app with the access log", args=(), loads=("by-id",)),
    ]


# --8<-- [end:variants]


async def capture_reads(db: h.Database) -> list[Read]:
    """The statement each read of the app sends, from the app's own services, as `Read`s: marker
    values show which parameter is the id, the skip and the limit. Each read must be one statement."""
    from sqlalchemy import event
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.core.database import WITHOUT_TRANSACTION, create_engine, create_sessionmaker
    from example_app.core.security import Passwords
    from example_app.services.errors import NotFoundError
    from example_app.services.post import PostService
    from example_app.services.user import UserService

    settings = db.settings()
    engine = create_engine(settings)
    sent: list[tuple[str, list[Any]]] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda c, cur, sql, params, *a: sent.append((sql, list(params or ()))),
    )
    marks = {424_242: ":id", 31_337: ":skip=0", 17: ":limit=20"}
    passwords = Passwords.from_settings(settings)
    schema = "example_app.schemas"
    reads: dict[Read, Callable[[AsyncSession], Awaitable[object]]] = {
        Read(f"{h.PREFIX}/posts/{{id}}", "", (), f"{schema}.post:PostWithAuthor", nest="author"): (
            lambda session: PostService(session).get_with_author(424_242)
        ),
        Read(f"{h.PREFIX}/posts", "", (), f"{schema}.post:PostResponse", many=True): (
            lambda session: PostService(session).list_posts(skip=31_337, limit=17)
        ),
        Read(f"{h.PREFIX}/users/{{id}}", "", (), f"{schema}.user:UserResponse", auth=True): (
            lambda session: UserService(session, passwords).get(424_242)
        ),
    }
    captured = []
    try:
        for read, call in reads.items():
            sent.clear()
            async with create_sessionmaker(engine)(execution_options=WITHOUT_TRANSACTION) as session:
                with suppress(NotFoundError):
                    await call(session)
            if len(sent) != 1:
                raise SystemExit(f"bench: the app's {read.path} sent {len(sent)} statements, not 1")
            sql, params = sent[0]
            args = tuple(marks.get(p, p) if isinstance(p, int) else p for p in params)
            captured.append(replace(read, sql=sql, args=args))
    finally:
        await engine.dispose()
    return captured


# --8<-- [start:slow_route]
def app_with_slow_route() -> FastAPI:
    """The app from its factory, with one route more for PF04: a 20 ms query through its session."""
    from sqlalchemy import text

    from example_app.main import create_app

    app = create_app()

    async def slow(db: SessionDep) -> dict[str, bool]:
        await db.exec(text("SELECT pg_sleep(0.02)"))  # type: ignore[call-overload]
        return {"slept": True}

    app.add_api_route("/bench/slow", slow, methods=["GET"])
    return app


# --8<-- [end:slow_route]


def slow_load(connections: int, seconds: int, db: h.Database) -> dict[str, Any]:
    """PF04: the cheap request's latency beside 20 ms queries, unpaced and paced, and alone."""
    slow = h.Load("GET /bench/slow", "/bench/slow")
    paced = h.Load(
        "GET /bench/slow, paced",
        "/bench/slow",
        lua=f"delay = function() return math.random(0, {2 * PACE_MS}) end",
    )
    found: dict[str, Any] = {}
    with h.Server(db.env(), "bench.hot_path:app_with_slow_route") as app:
        # --8<-- [start:pf04]
        cheap = f"{h.PREFIX}/posts/1"
        for name, load in (("loaded", slow), ("paced", paced), ("alone", None)):
            cpu = app.cpu_seconds()
            with h.Probe(app.base, cheap, every_ms=10) as probe:
                run = h.wrk(app.base, load, connections, seconds) if load else None
                if run is None:
                    time.sleep(seconds)
            found[name] = {
                "p50_ms": h.percentile(probe.latencies_ms, 50),
                "p99_ms": h.percentile(probe.latencies_ms, 99),
                "requests": len(probe.latencies_ms),
                "errors": probe.errors,
                "slow_per_s": run.ok_per_s if run else 0.0,
                "slow_errors": run.errors + run.shed if run else 0,
                "cpu_share": (app.cpu_seconds() - cpu) / seconds,  # of one core
            }
            app.settle()
        # --8<-- [end:pf04]
    return found


def goals(measures: list[Any]) -> list[str]:
    got = {(m.variant, m.load): m for m in measures}
    lines = []
    for load in ("by-id", "list"):
        for floor, goal in GOALS.items():
            if (app := got.get(("app", load))) and (base := got.get((floor, load))):
                share = app.requests_per_s / base.requests_per_s
                lines.append(
                    f"Goal ({load}: the app at least {goal}x {floor}): {h.met(share >= goal)}, {share:.2f}x "
                    f"(by CPU per request, steadier on a busy machine: {h.ratio(base.cpu_ms, app.cpu_ms)})"
                )
    return lines


def run(
    seconds: int = 5, connections: int = 32, rounds: int = 2, warmup: int = 2, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    with h.database() as db:
        h.seed_posts(db, USERS, POSTS)
        reads = asyncio.run(capture_reads(db))
        chosen = [v for v in variants(reads) if not only or v.name in only]
        the_loads = loads(h.bearer(db, range(1, TOKENS + 1)))
        tokens = h.bearer(db, [1])
        answers: dict[str, Any] = {}

        def same_answers(variant: h.Variant, server: h.Server) -> None:
            """Each server answers each read with the app's very body (the app is started first)."""
            for path in ("/posts/7", "/posts?limit=20&skip=3", "/users/1"):
                got = httpx.get(f"{server.base}{h.PREFIX}{path}", headers={"Authorization": tokens[0]}).json()
                if answers.setdefault(path, got) != got:
                    raise SystemExit(f"bench: {variant.name} answers {path} unlike the app: {got}")

        measures = h.compare(
            chosen, the_loads, db.env(), seconds=seconds, connections=connections, rounds=rounds,
            warmup=warmup, check=same_answers,
        )  # fmt: skip
        pf04 = slow_load(connections, 2 * seconds, db)
    return h.results(
        db, measures, the_loads, seconds=seconds, connections=connections, rounds=rounds, pf04=pf04,
        goals=goals(measures), goal_p99_ms=GOAL_P99_MS, pace_ms=PACE_MS,
    )  # fmt: skip


def floors(data: dict[str, Any]) -> str:
    return h.table(h.measured(data), "core")


def report(data: dict[str, Any]) -> str:
    pf04, n = data["pf04"], data["connections"]
    lines = [
        f"The app's hot path: 1 uvicorn worker per server, wrk -t1 -c{n}; {data['rounds']} rounds of "
        f"{data['seconds']} s per server and load, in alternating order",
        "",
        "1. The app, its options, and the same SQL and response without it (bench/patterns.py)",
        "",
        floors(data),
        "",
        *data["goals"],
        "",
        f"2. A cheap GET every 10 ms while {n} connections run a 20 ms query through the app's session",
        "",
    ]
    spec = ["cheap request:<{}", "p50 ms:{:.1f}", "p99 ms:{:.1f}", "(n)"]
    spec += ["errors", "slow/s:{:.0f}", "CPU:{:.0%}"]
    labels = {"loaded": "with the slow load", "paced": f"paced ({PACE_MS} ms pauses)", "alone": "alone"}
    lines += h.columns(spec, [
        (label, p["p50_ms"], p["p99_ms"], p["requests"], p["errors"] + p["slow_errors"], p["slow_per_s"],
         p["cpu_share"])
        for label, p in ((label, pf04[name]) for name, label in labels.items())
    ])  # fmt: skip
    paced = pf04["paced"]["p99_ms"]
    lines += [
        "CPU: the server's, as a share of one core",
        f"Goal (cheap request p99 under {GOAL_P99_MS:.0f} ms, slow load paced): "
        f"{h.met(paced < GOAL_P99_MS)}, {paced:.1f} ms",
    ]
    return "\n".join(lines)


main = h.scenario("hot_path", run, report, lambda data: {"app_routes": floors(data)})
