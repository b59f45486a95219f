"""Decision 6, measured: four ways to serve the same query, under the same HTTP load, in one run.

For each variant: uvicorn with 1 worker on loopback, `wrk` with N connections for D seconds, a
fetch-by-primary-key of a random user, once as is and once with a 20 ms wait added to the query.
Ratios are against the original guide's pattern (async def over a sync Session).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from devtools.postgres_provider import free_port, provide

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("async-sync-session", "def-sync-session", "async-asyncsession", "raw-asyncpg")
BASELINE = "async-sync-session"
RECORD = ROOT / "bench" / "results" / "decision6.txt"
USERS = 1000
LUA = f"""
init = function(args) sleep = args[1] end
request = function()
  return wrk.format("GET", "/users/" .. math.random(1, {USERS}) .. "?sleep=" .. sleep)
end
"""


@dataclass
class Result:
    variant: str
    sleep_ms: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return rps, p50, p99, errors


def _seed(database_url: str) -> str:
    """Migrate, insert the users, and return the server's version ("PostgreSQL 15.18")."""
    import asyncio

    import asyncpg
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    command.upgrade(cfg, "head")

    async def seed() -> str:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            await conn.execute("TRUNCATE users RESTART IDENTITY CASCADE")
            await conn.execute(
                "INSERT INTO users (email, hashed_password, name) "
                "SELECT 'bench' || g || '@example.com', 'x', 'Bench ' || g FROM generate_series(1, $1) g",
                USERS,
            )
            return "PostgreSQL " + str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(seed())


def _serve(variant: str, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.decision6_apps:app",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, "BENCH_VARIANT": variant, "DATABASE_URL": database_url},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/users/1", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"bench: the {variant} app did not start")
        time.sleep(0.2)


def _wrk(base: str, script: Path, connections: int, seconds: int, sleep_s: float) -> str:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        base,
        "--",
        str(sleep_s),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def run(seconds: int = 10, connections: int = 32) -> tuple[list[Result], str]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (apt install wrk)")
    results: list[Result] = []
    with provide("BENCH_DATABASE_URL", dbname="bench") as server, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        version = _seed(server.url)
        script = Path(tmp) / "random_user.lua"
        script.write_text(LUA)
        for variant in VARIANTS:
            process, base = _serve(variant, server.url)
            try:
                _wrk(base, script, connections, 2, 0)  # warm-up: pools filled, code paths hot
                for sleep_ms in (0, 20):
                    rps, p50, p99, errors = parse_wrk(
                        _wrk(base, script, connections, seconds, sleep_ms / 1000)
                    )
                    results.append(Result(variant, sleep_ms, rps, p50, p99, errors))
                    print(
                        f"  {variant:20} +{sleep_ms:2} ms query: {rps:8.0f} req/s  p99 {p99:7.1f} ms",
                        file=sys.stderr,
                    )
            finally:
                process.terminate()
                process.wait(timeout=15)
    return results, version


def report(results: list[Result], connections: int) -> str:
    lines = [f"Decision 6: 1 uvicorn worker, {connections} connections, fetch by primary key", ""]
    lines.append(
        f"{'variant':20} {'query':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'vs original':>12}"
    )
    for r in results:
        base = next(b for b in results if b.variant == BASELINE and b.sleep_ms == r.sleep_ms)
        ratio = r.requests_per_s / base.requests_per_s if base.requests_per_s else float("nan")
        lines.append(
            f"{r.variant:20} {'+' + str(r.sleep_ms) + ' ms':>8} {r.requests_per_s:8.0f} {r.p50_ms:8.1f} "
            f"{r.p99_ms:8.1f} {r.errors:6d} {ratio:11.2f}x"
        )
    return "\n".join(lines)


def main(seconds: int = 10, connections: int = 32, record: bool = False) -> None:
    results, server = run(seconds, connections)
    text = report(results, connections)
    print(text)
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "bench-decision6.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    if record:  # the figures the guide shows: a dated run, with the machine it ran on
        header = (
            f"# python3 tasks.py bench --record, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
            f"{server}, wrk -t1 -c{connections} -d{seconds}s"
        )
        RECORD.parent.mkdir(exist_ok=True)
        # A named section, so the guide includes it like any other live snippet (the marker is
        # built from parts: this file itself must not look like it holds a section).
        marker = "# --8<" + "-- [{}:decision6]"
        RECORD.write_text(
            f"# The figures docs/decisions/async.md shows; rewrite with --record.\n"
            f"{marker.format('start')}\n{header}\n{text}\n{marker.format('end')}\n"
        )
