"""Where the app's CPU goes on GET /posts/{id}, layer by layer under cProfile, beside the Core
floor's (PF02). Explained on docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import harness as h
from bench.hot_path import POSTS, USERS, capture_reads

# (a part of the file's path, a word of the function's name or "", its layer): the first that matches
# FastAPI tries the app's routes in turn until one matches the path: these functions do that.
MATCHING = ("match", "scope", "effective", "routes_version")
ROUTING = "FastAPI: finding the route among the app's"
LAYERS = (
    ("example_app/api/routes", "", "the app's routes"),
    ("example_app/api/dependencies", "", "the app's dependencies"),
    ("example_app/api/", "", "the app's middleware"),
    ("example_app/services", "", "the app's services"),
    ("example_app/", "", "the app's other code"),
    ("bench/patterns", "", "the floor's route"),
    ("fastapi/dependencies", "", "FastAPI: resolving dependencies"),
    *((f"{lib}/routing", word, ROUTING) for lib in ("fastapi", "starlette") for word in MATCHING),
    ("fastapi/_compat", "", "FastAPI: the response model"),
    ("fastapi/routing", "serialize_response", "FastAPI: the response model"),
    ("fastapi/", "", "FastAPI: the request's handler, telemetry"),
    ("starlette/", "", "Starlette: middleware stack, requests, responses"),
    ("pydantic", "", "pydantic"),
    ("sqlmodel/", "", "SQLAlchemy: the session"),
    ("sqlalchemy/orm", "", "SQLAlchemy: the session"),
    ("sqlalchemy/ext/asyncio/session", "", "SQLAlchemy: the session"),
    ("sqlalchemy/pool", "", "SQLAlchemy: the pool"),
    ("sqlalchemy/dialects", "", "SQLAlchemy: the asyncpg dialect"),
    ("sqlalchemy/", "", "SQLAlchemy: Core, engine, results"),
    ("asyncpg", "", "asyncpg"),
    ("uvicorn", "", "uvicorn and httptools"),
    ("httptools", "", "uvicorn and httptools"),
    ("asyncio", "", "the event loop"),
    ("uvloop", "", "the event loop"),
    ("anyio", "", "anyio"),
)


def layer(path: str, function: str) -> str:
    tail = path.split("site-packages/")[-1].removeprefix(f"{h.ROOT}/")  # a library's, or the project's
    return next(
        (
            name
            for part, word, name in LAYERS
            if (tail.startswith(part) or f"/{part}" in tail) and word in function
        ),
        "other Python",
    )


def by_layer(profile: Path, requests: int) -> dict[str, float]:
    """Microseconds of CPU per request, per layer. A C function's time, and the standard
    library's (contextlib, typing, uuid...), goes to the layers of its callers, by their share."""
    stats: dict[Any, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    shares: dict[Any, dict[str, float]] = {}

    def layers_of(key: Any, seen: frozenset[Any] = frozenset()) -> dict[str, float]:
        if key not in shares:
            path, _, function = key
            own = layer(path, function)
            callers = stats[key][4] if key in stats else {}
            borrowed = path == "~" or (own == "other Python" and f"{os.sep}site-packages{os.sep}" not in path)
            total = sum(ct for (_, _, _, ct) in callers.values())
            if not borrowed or not total or key in seen:
                shares[key] = {own: 1.0}
            else:
                found: dict[str, float] = {}
                for caller, (_, _, _, ct) in callers.items():
                    for name, part in layers_of(caller, seen | {key}).items():
                        found[name] = found.get(name, 0.0) + part * ct / total
                shares[key] = found
        return shares[key]

    seconds: dict[str, float] = {}
    for key, (_, _, own, _, _) in stats.items():
        for name, part in layers_of(key).items():
            seconds[name] = seconds.get(name, 0.0) + own * part
    return {name: s * 1e6 / requests for name, s in sorted(seconds.items(), key=lambda x: -x[1])}


def create_app() -> Any:
    """BENCH_TARGET's app (module:factory), with GET /bench/profile/start and /stop around it."""
    import cProfile
    from importlib import import_module

    module, factory = os.environ["BENCH_TARGET"].split(":")
    app, profiler = getattr(import_module(module), factory)(), cProfile.Profile(time.thread_time)

    async def profiled(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/bench/profile/"):
            await app(scope, receive, send)
            return
        if scope["path"].endswith("start"):
            profiler.enable()
        else:
            profiler.disable()
            profiler.dump_stats(os.environ["BENCH_PROFILE"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return profiled


def run(seconds: int = 10, connections: int = 32) -> dict[str, Any]:
    with h.database() as db, tempfile.TemporaryDirectory() as tmp:
        h.seed_posts(db, USERS, POSTS)
        reads = json.dumps([r.env() for r in asyncio.run(capture_reads(db))])
        load = h.get("GET /posts/{id}", f'"{h.PREFIX}/posts/" .. math.random(1, {POSTS})')
        layers = {}
        for name, target, env in (
            ("app", h.APP, dict[str, str]()),
            ("core", "bench.patterns:create_app", {"BENCH_PATTERN": "core", "BENCH_READS": reads}),
        ):
            profile = Path(tmp) / f"{name}.prof"
            env |= {"BENCH_TARGET": target, "BENCH_PROFILE": str(profile)}
            with h.Server(db.env(**env), "bench.profile:create_app") as server:
                h.wrk(server.base, load, connections, 2)  # warm-up, not profiled
                server.settle()
                httpx.get(f"{server.base}/bench/profile/start")
                run = h.wrk(server.base, load, connections, seconds)
                httpx.get(f"{server.base}/bench/profile/stop")
            layers[name] = by_layer(profile, run.requests)
    return {"postgres": db.postgres, "seconds": seconds, "connections": connections, "layers": layers}


def report(data: dict[str, Any]) -> str:
    app, core = data["layers"]["app"], data["layers"]["core"]
    names = sorted(set(app) | set(core), key=lambda n: core.get(n, 0.0) - app.get(n, 0.0))
    rows = [(n, app.get(n, 0.0), core.get(n, 0.0), app.get(n, 0.0) - core.get(n, 0.0)) for n in names]
    rows.append(("all", sum(app.values()), sum(core.values()), sum(app.values()) - sum(core.values())))
    spec = ["layer:<{}", "app:{:.0f}", "Core floor:{:.0f}", "app - floor:{:+.0f}"]
    return "\n".join([
        f"CPU per request by layer, under cProfile: GET /posts/{{id}}, wrk -c{data['connections']} "
        f"-d{data['seconds']}s (microseconds; cProfile's own cost included)",
        "",
        *h.columns(spec, rows),
    ])  # fmt: skip


main = h.scenario("hot_path_profile", run, report)
