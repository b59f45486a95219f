"""The soak (HD06): 60 s of mixed reads and writes at 64 connections, and what it leaves behind.

The app is served as every benchmark serves it (harness.Server), with one route more that answers
its pool's counts; wrk sends the load: posts listed, read and written, the caller's account read,
all with a bearer token. Before (after a warm-up) and after the load, and again once it settled:
the pool's counts, the app's connections in pg_stat_activity, the server's RSS and open file
descriptors. A leak shows as a count that does not come back, or memory that keeps growing.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from fastapi import FastAPI, Request

from bench import harness as h

POSTS = 500
# One request of the mix, by weight: 50 % list, 20 % read one, 10 % own account, 20 % writes.
MIX = """
request = function()
  local r = math.random(1, 10)
  if r <= 5 then return wrk.format("GET", "/api/v1/posts?limit=20") end
  if r <= 7 then return wrk.format("GET", "/api/v1/posts/" .. math.random(1, %(posts)d)) end
  if r == 8 then return wrk.format("GET", "/api/v1/users/%(me)d") end
  if r == 9 then return wrk.format("POST", "/api/v1/posts", nil, '{"title": "Soak", "body": "Text."}') end
  return wrk.format("PATCH", "/api/v1/posts/" .. math.random(1, %(posts)d), nil, '{"tags": ["soak"]}')
end
"""


def app_with_pool_route() -> FastAPI:
    """The app from its factory, with GET /bench/pool: the counts of its pool, read where they live."""
    from example_app.main import create_app

    app = create_app()

    def pool(request: Request) -> dict[str, int]:
        pool = request.app.state.resources.engine.pool
        return {"pool_size": pool.size(), "pool_checked_out": pool.checkedout(),
                "pool_overflow": max(pool.overflow(), 0), "pool_idle": pool.checkedin()}  # fmt: skip

    app.add_api_route("/bench/pool", pool, methods=["GET"])
    return app


def snapshot(db: h.Database, server: h.Server) -> dict[str, float]:
    """The counts of the server's pool, the connections PostgreSQL lists for it, its memory."""
    name = db.settings().DB_APPLICATION_NAME
    where = "FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"
    return {
        **httpx.get(f"{server.base}/bench/pool").json(),
        "pg_connections": db.value(f"SELECT count(*) {where}", (name,)),
        "pg_active": db.value(f"SELECT count(*) {where} AND state = 'active'", (name,)),
        "rss_mib": server.rss() / 2**20,
        "open_fds": psutil.Process(server.process.pid).num_fds(),
    }


def run(seconds: int = 60, connections: int = 64, warmup: int = 5) -> dict[str, Any]:
    with h.database() as db, h.Server(db.env(), "bench.soak:app_with_pool_route") as server:
        h.seed_posts(db, users=1, posts=0)  # the caller: user 1
        insert = "INSERT INTO posts (title, slug, body, author_id) SELECT 'Post ' || g, 'post-' || g, 'Text'"
        db.sql(f"{insert}, 1 FROM generate_series(1, {POSTS}) g")
        headers = {"Authorization": h.bearer(db, [1])[0], "Content-Type": "application/json"}
        load = h.Load("mix", lua=MIX % {"posts": POSTS, "me": 1}, headers=headers)
        if warmup:
            h.wrk(server.base, load, connections, warmup, threads=2)  # the pool filled, code paths warm
        time.sleep(1)
        before = snapshot(db, server)
        run = h.wrk(server.base, load, connections, seconds, threads=2)
        after = snapshot(db, server)
        time.sleep(3)
        settled = snapshot(db, server)
    return {
        "postgres": db.postgres, "seconds": seconds, "connections": connections, "requests": run.requests,
        "requests_per_s": run.per_s, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms, "errors": run.errors,
        "shed": run.shed, "before": before, "after": after, "settled": settled,
    }  # fmt: skip


def report(r: dict[str, Any]) -> str:
    lines = [
        f"Soak: {r['seconds']} s, {r['connections']} connections, 1 uvicorn worker; 50 % list posts, "
        "20 % read a post, 10 % read own account, 10 % create a post, 10 % edit a post",
        f"{r['requests']} requests, {r['requests_per_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}; 503 + Retry-After (no pooled connection free "
        f"within DB_POOL_TIMEOUT): {r['shed']}",
        "",
    ]
    when = ("before", "after", "settled")
    rows = [
        [name, *(f"{r[w][name]:.1f}" if name == "rss_mib" else r[w][name] for w in when)]
        for name in r["before"]
    ]
    return "\n".join(lines + h.columns([":<{}", *when], rows))


main = h.scenario("soak", run, report)

if __name__ == "__main__":  # python -m bench.soak SECONDS CONNECTIONS WARMUP: a short run, for the test
    seconds, connections, warmup = map(int, sys.argv[1:])
    h.scenario("soak", partial(run, warmup=warmup), report)(seconds, connections)
