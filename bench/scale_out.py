"""Scale-out: 1 and 2 uvicorn workers, straight to PostgreSQL or through PgBouncer, on a read and a
write of the app, in one run. Explained on docs/deployment.md.
"""

from __future__ import annotations

from typing import Any

from bench import harness as h
from devtools.pgbouncer import pgbouncer

USERS, POSTS, CLIENTS = 1_000, 1_000, 200  # clients: users with a token and a post of their own
POOLER_SIZE = 20  # PgBouncer's server connections
EDIT = """n = 0
request = function()
  local i = math.random(1, #posts)
  n = n + 1
  local headers = {["Authorization"] = tokens[i], ["Content-Type"] = "application/json"}
  return wrk.format("PATCH", "%s/posts/" .. posts[i], headers, '{"title": "Edited ' .. n .. '"}')
end"""


def owned_posts() -> list[tuple[int, int]]:
    """(user, a post of theirs) for the CLIENTS first users: seed_posts gives user u post u - 1."""
    return [(u, u - 1 if u > 1 else POSTS) for u in range(1, CLIENTS + 1)]


def run(seconds: int = 8, connections: int = 32, rounds: int = 2, warmup: int = 2) -> dict[str, Any]:
    with h.database() as db, pgbouncer(db.url, pool_size=POOLER_SIZE) as pooled:
        h.seed_posts(db, USERS, POSTS)
        tokens = h.bearer(db, [u for u, _ in owned_posts()])
        given = f"tokens = {h.lua_table(tokens)}\nposts = {h.lua_table([p for _, p in owned_posts()])}\n"
        loads = {
            "read": h.get("GET /posts/{id}", f'"{h.PREFIX}/posts/" .. math.random(1, {POSTS})'),
            "write": h.Load("PATCH /posts/{id} (own post)", lua=given + EDIT % h.PREFIX),
        }
        behind = {"DATABASE_URL": pooled, "DB_BEHIND_POOLER": "true"}
        variants = [
            h.Variant(
                f"{n} worker{'s' if n > 1 else ''}, {how}", env, workers=n, ready=f"{h.PREFIX}/health/ready"
            )
            for how, env in (("direct", {}), ("through PgBouncer", behind))
            for n in (1, 2)
        ]
        measures = h.compare(
            variants, loads, db.env(), seconds=seconds, connections=connections, rounds=rounds, warmup=warmup
        )
    return h.results(db, measures, loads, seconds=seconds, connections=connections, rounds=rounds)


def report(data: dict[str, Any]) -> str:
    measures = h.measured(data)
    return (
        f"The app under wrk -c{data['connections']}; {data['rounds']} rounds of {data['seconds']} s "
        f"per configuration and load, in alternating order; PgBouncer in transaction mode with {POOLER_SIZE} "
        f"server connections\n\n{h.table(measures, measures[0].variant, data['loads'])}"
    )


main = h.scenario("scale_out", run, report)
