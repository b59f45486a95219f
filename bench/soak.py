"""The soak (HD06): 60 s of mixed reads and writes at 64 connections, and what it leaves behind.

The app runs in this process (uvicorn in a thread, 1 worker, the real settings), so its pool can
be read directly; wrk sends the load: posts listed, read and written, the caller's account read,
all with a bearer token. Before (after a warm-up) and after the load, and again once it settled:
the pool's counts, the app's connections in pg_stat_activity, this process's RSS and open file
descriptors. A leak shows as a count that does not come back, or memory that keeps growing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.decision6 import parse_wrk
from devtools.postgres_provider import free_port, provide

if TYPE_CHECKING:
    from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "results" / "soak.txt"
POSTS = 500
PASSWORD = "soak password"
# One request of the mix, by weight: 50 % list, 20 % read one, 10 % own account, 20 % writes.
LUA = """
token, posts, me = nil, 0, 0
shed, failed = 0, 0
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) token, posts, me = args[1], tonumber(args[2]), args[3] end
request = function()
  local h = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  local r = math.random(1, 10)
  if r <= 5 then return wrk.format("GET", "/api/v1/posts?limit=20", h) end
  if r <= 7 then return wrk.format("GET", "/api/v1/posts/" .. math.random(1, posts), h) end
  if r == 8 then return wrk.format("GET", "/api/v1/users/" .. me, h) end
  if r == 9 then
    return wrk.format("POST", "/api/v1/posts", h, '{"title": "Soak", "body": "Written under load."}')
  end
  return wrk.format("PATCH", "/api/v1/posts/" .. math.random(1, posts), h, '{"tags": ["soak"]}')
end
-- 503 + Retry-After is the app shedding load (no pooled connection within DB_POOL_TIMEOUT);
-- any other status over 299 is an error.
response = function(status, headers, body)
  if status == 503 then shed = shed + 1 elseif status > 299 then failed = failed + 1 end
end
done = function(summary, latency, requests)
  local s, f = 0, 0
  for _, t in ipairs(threads) do s = s + t:get("shed"); f = f + t:get("failed") end
  io.write(string.format("shed: %d\\nfailed: %d\\n", s, f))
end
"""


@dataclass
class Snapshot:
    pool_size: int
    pool_checked_out: int
    pool_overflow: int
    pool_idle: int
    pg_connections: int  # the app's, from pg_stat_activity (its application_name, on its database)
    pg_active: int
    rss_mib: float
    open_fds: int


@dataclass
class SoakResult:
    seconds: int
    connections: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers over 299 other than 503, and socket errors (timeouts included)
    shed: int  # 503 + Retry-After: no pooled connection within DB_POOL_TIMEOUT
    before: Snapshot
    after: Snapshot  # right after the load
    settled: Snapshot  # a few seconds later
    postgres: str


def _proc(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field))) / 1024


def _snapshot(database_url: str, app: FastAPI) -> Snapshot:
    """The counts of `app`'s pool (its lifespan's engine), and of the connections PostgreSQL lists
    for it, with this process's memory and descriptors."""
    import asyncio

    import asyncpg

    async def activity() -> tuple[int, int]:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, count(*) FILTER (WHERE state = 'active') AS active "
                "FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                app.state.settings.DB_APPLICATION_NAME,
            )
            assert row is not None
            return int(row["n"]), int(row["active"])
        finally:
            await conn.close()

    pool: Any = app.state.resources.engine.pool
    connections, active = asyncio.run(activity())
    return Snapshot(
        pool_size=pool.size(),
        pool_checked_out=pool.checkedout(),
        pool_overflow=max(pool.overflow(), 0),
        pool_idle=pool.checkedin(),
        pg_connections=connections,
        pg_active=active,
        rss_mib=_proc("VmRSS:"),
        open_fds=len(os.listdir("/proc/self/fd")),
    )


def _migrate(database_url: str) -> str:
    """Alembic to head; the server's version ("PostgreSQL 16.2")."""
    import asyncio

    import asyncpg
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    command.upgrade(cfg, "head")

    async def version() -> str:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await conn.execute("TRUNCATE users RESTART IDENTITY CASCADE")
            return "PostgreSQL " + str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(version())


def _posts(database_url: str, author_id: int) -> None:
    """POSTS posts by the soak's user, who may then edit any of them."""
    import asyncio

    import asyncpg

    async def insert() -> None:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await conn.execute(
                "INSERT INTO posts (title, slug, body, author_id) "
                "SELECT 'Post ' || g, 'post-' || g, 'Text of post ' || g, $2 FROM generate_series(1, $1) g",
                POSTS,
                author_id,
            )
        finally:
            await conn.close()

    asyncio.run(insert())


def _serve(app: FastAPI, port: int) -> Any:
    import logging

    import uvicorn

    logging.getLogger("procrastinate").setLevel(logging.WARNING)  # a line per deferred job otherwise

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    config.access_log = False
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("soak: the app did not start")
        time.sleep(0.1)
    return server


def _wrk(base: str, script: Path, connections: int, seconds: int, args: list[str]) -> str:
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(script), base]
    return subprocess.run([*cmd, "--", *args], capture_output=True, text=True, check=True).stdout


def run(seconds: int = 60, connections: int = 64, warmup: int = 5) -> SoakResult:
    if shutil.which("wrk") is None:
        raise SystemExit("the soak needs wrk (apt install wrk)")
    with provide("BENCH_DATABASE_URL", dbname="soak") as server, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        version = _migrate(server.url)
        os.environ["DATABASE_URL"] = server.url  # before the app is imported: its settings
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
        from example_app.main import app  # what `uvicorn example_app.main:app` serves

        port = free_port()
        app_server = _serve(app, port)
        base = f"http://127.0.0.1:{port}"
        try:
            signup = {"email": "soak@example.com", "password": PASSWORD, "name": "Soak"}
            me = httpx.post(f"{base}/api/v1/users", json=signup, timeout=30).json()["id"]
            _posts(server.url, me)
            form = {"username": signup["email"], "password": PASSWORD}
            token = httpx.post(f"{base}/api/v1/auth/token", data=form, timeout=30).json()["access_token"]
            script = Path(tmp) / "soak.lua"
            script.write_text(LUA)
            args = [token, str(POSTS), str(me)]
            if warmup:
                _wrk(base, script, connections, warmup, args)  # the pool filled, code paths warm
            time.sleep(1)
            before = _snapshot(server.url, app)
            output = _wrk(base, script, connections, seconds, args)
            after = _snapshot(server.url, app)
            time.sleep(3)
            settled = _snapshot(server.url, app)
        finally:
            app_server.should_exit = True
            time.sleep(1)
    rps, p50, p99, non_2xx_and_socket = parse_wrk(output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    shed = int(re.search(r"shed: (\d+)", output).group(1))  # type: ignore[union-attr]
    errors = non_2xx_and_socket - shed
    return SoakResult(
        seconds, connections, requests, rps, p50, p99, errors, shed, before, after, settled, version
    )


def report(r: SoakResult) -> str:
    lines = [
        f"Soak: {r.seconds} s, {r.connections} connections, 1 uvicorn worker; 50 % list posts, 20 % read a "
        f"post, 10 % read own account, 10 % create a post, 10 % edit a post; {r.postgres}",
        f"{r.requests} requests, {r.requests_per_s:.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
        f"errors {r.errors}; 503 + Retry-After (no pooled connection free within DB_POOL_TIMEOUT): "
        f"{r.shed}",
        "",
        f"{'':28} {'before':>8} {'after':>8} {'settled':>8}",
    ]
    rows = [
        ("pool: size", "pool_size"),
        ("pool: checked out", "pool_checked_out"),
        ("pool: overflow", "pool_overflow"),
        ("pool: idle", "pool_idle"),
        ("pg_stat_activity: the app's", "pg_connections"),
        ("pg_stat_activity: active", "pg_active"),
        ("RSS (MiB)", "rss_mib"),
        ("open file descriptors", "open_fds"),
    ]
    for label, name in rows:
        values = [getattr(s, name) for s in (r.before, r.after, r.settled)]
        shown = [f"{v:8.1f}" if isinstance(v, float) else f"{v:8d}" for v in values]
        lines.append(f"{label:28} {' '.join(shown)}")
    return "\n".join(lines)


def main(seconds: int = 60, connections: int = 64, record: bool = False, warmup: int = 5) -> None:
    """`python3 tasks.py bench --name soak` (defaults: 60 s at 64 connections)."""
    result = run(seconds, connections, warmup)
    text = report(result)
    print(text)
    print("JSON " + json.dumps(asdict(result)))
    if record:
        day, cores = time.strftime("%Y-%m-%d"), os.cpu_count()
        header = f"# python3 tasks.py bench --name soak --record, {day}, {cores} cores"
        RECORD.parent.mkdir(exist_ok=True)
        RECORD.write_text(f"{header}\n{text}\n")


if __name__ == "__main__":  # python -m bench.soak [seconds connections record warmup], for the test
    numbers = [int(a) for a in sys.argv[1:]] + [60, 64, 0, 5][len(sys.argv) - 1 :]
    main(numbers[0], numbers[1], bool(numbers[2]), numbers[3])
