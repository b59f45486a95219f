"""Decision 6, measured: four ways to serve the same query, under the same HTTP load, in one run.

Each pattern of bench/patterns.py (the original guide's `async def` over a sync Session, a `def`
route over it, an AsyncSession, raw asyncpg) serves GET /users/{id}, a fetch by primary key of
a random user, under uvicorn with 1 worker; wrk loads it as is and with a 20 ms wait added to
the query. Ratios are against the original guide's pattern.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.harness import Measure, Record, Variant, compare, database, get, seed_posts, table
from bench.patterns import Read

USERS = 1_000
READ = Read(
    "/users/{id}",
    "SELECT id, email, name FROM users WHERE id = $1 AND pg_sleep($2) IS NOT NULL",
    (":id", ":sleep=0"),
)
PATTERNS = ("async-sync-session", "def-sync-session", "async-session", "raw-asyncpg")
LOADS = {
    f"+{ms} ms": get(f"+{ms} ms query", f'"/users/" .. math.random(1, {USERS}) .. "?sleep={ms / 1000}"')
    for ms in (0, 20)
}


def run(
    seconds: int = 10, connections: int = 32, rounds: int = 1, warmup: int = 2
) -> tuple[list[Measure], str]:
    variants = [
        Variant(p, {"BENCH_PATTERN": p, "BENCH_READS": json.dumps([READ.env()])}, "bench.patterns:create_app")
        for p in PATTERNS
    ]
    with database() as db:
        seed_posts(db, USERS, 0)
        measures = compare(
            variants, LOADS, db.env(), seconds=seconds, connections=connections, rounds=rounds, warmup=warmup
        )
    return measures, db.postgres


def main(seconds: int = 10, connections: int = 32, record: bool = False) -> None:
    started = Record("decision6")
    measures, postgres = run(seconds, connections)
    text = (
        f"Decision 6: 1 uvicorn worker, wrk -c{connections} -d{seconds}s, fetch by primary key\n\n"
        + table(measures, PATTERNS[0], {k: v.label for k, v in LOADS.items()})
    )
    started.write(text, {"measures": [asdict(m) for m in measures]}, postgres=postgres, record=record)
