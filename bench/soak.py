"""The soak (HD06): 60 s of mixed reads and writes at 64 connections, and what it leaves behind.

The app runs in this process (uvicorn in a thread, the real settings), so that its pool can be
read directly; wrk sends the load: posts listed, read and written, the caller's account read, all
with a bearer token. Before (after a warm-up) and after the load, and again once it settled: the
pool's counts, the app's connections in pg_stat_activity, this process's RSS and open file
descriptors. A leak shows as a count that does not come back, or memory that keeps growing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from functools import partial
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench import harness as h
from devtools.postgres_provider import free_port

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


def snapshot(db: h.Database, app: Any) -> dict[str, float]:
    """The counts of `app`'s pool, the connections PostgreSQL lists for it, this process's memory."""
    pool = app.state.resources.engine.pool
    name = app.state.settings.DB_APPLICATION_NAME
    where = f"FROM pg_stat_activity WHERE application_name = '{name}' AND datname = current_database()"
    this = psutil.Process()
    return {
        "pool_size": pool.size(),
        "pool_checked_out": pool.checkedout(),
        "pool_overflow": max(pool.overflow(), 0),
        "pool_idle": pool.checkedin(),
        "pg_connections": db.value(f"SELECT count(*) {where}"),
        "pg_active": db.value(f"SELECT count(*) {where} AND state = 'active'"),
        "rss_mib": this.memory_info().rss / 2**20,
        "open_fds": this.num_fds(),
    }


def run(seconds: int = 60, connections: int = 64, warmup: int = 5) -> dict[str, Any]:
    import logging

    import uvicorn

    with h.database() as db:
        os.environ.update(db.env())  # the app's settings, before it is imported
        from example_app.main import create_app

        app, port = create_app(), free_port()
        logging.getLogger("procrastinate").setLevel(logging.WARNING)  # a line per deferred job otherwise
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", access_log=False))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        try:
            while not server.started:
                time.sleep(0.1)
            me, headers = h.sign_up(base)
            insert = (
                "INSERT INTO posts (title, slug, body, author_id) SELECT 'Post ' || g, 'post-' || g, 'Text'"
            )
            db.sql(f"{insert}, %(me)s FROM generate_series(1, {POSTS}) g", params={"me": me})
            headers["Content-Type"] = "application/json"
            load = h.Load("mix", lua=MIX % {"posts": POSTS, "me": me}, headers=headers)
            if warmup:
                h.wrk(base, load, connections, warmup, threads=2)  # the pool filled, code paths warm
            time.sleep(1)
            before = snapshot(db, app)
            run = h.wrk(base, load, connections, seconds, threads=2)
            after = snapshot(db, app)
            time.sleep(3)
            settled = snapshot(db, app)
        finally:
            server.should_exit = True
            time.sleep(1)
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
