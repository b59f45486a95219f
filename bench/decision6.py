"""Decision 6 (E03, D11): the four ways of serving a query of bench/patterns.py under the same
wrk load, with and without a 20 ms wait in the query. Explained on docs/decisions/async.md.
"""

from __future__ import annotations

import json
from typing import Any

from bench import harness as h
from bench.patterns import Read

USERS = 1_000
READ = Read(
    "/users/{id}",
    "SELECT id, email, name FROM users WHERE id = $1 AND pg_sleep($2) IS NOT NULL",
    (":id", ":sleep=0"),
)
PATTERNS = ("async-sync-session", "def-sync-session", "async-session", "raw-asyncpg")
LOADS = {
    f"+{ms} ms": h.get(f"+{ms} ms query", f'"/users/" .. math.random(1, {USERS}) .. "?sleep={ms / 1000}"')
    for ms in (0, 20)
}


def run(seconds: int = 10, connections: int = 32, rounds: int = 1, warmup: int = 2) -> dict[str, Any]:
    env = {"BENCH_READS": json.dumps([READ.env()])}
    variants = [h.Variant(p, {"BENCH_PATTERN": p, **env}, "bench.patterns:create_app") for p in PATTERNS]
    with h.database() as db:
        h.seed_posts(db, USERS, 0)
        measures = h.compare(
            variants, LOADS, db.env(), seconds=seconds, connections=connections, rounds=rounds, warmup=warmup
        )
    return h.results(db, measures, LOADS, seconds=seconds, connections=connections)


def report(data: dict[str, Any]) -> str:
    return (
        f"Decision 6: 1 uvicorn worker, wrk -c{data['connections']} -d{data['seconds']}s, fetch by "
        f"primary key\n\n{h.table(h.measured(data), PATTERNS[0], data['loads'])}"
    )


main = h.scenario("decision6", run, report)
