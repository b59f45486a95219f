"""Scale-out, measured (issue 14): 1 and 2 uvicorn workers, straight to PostgreSQL or through
PgBouncer (transaction pooling), on a read and a write of the reference app, side by side.

Each configuration serves `example_app.main:app` as `serve --workers N` does (uvicorn, N
processes; behind PgBouncer with DB_BEHIND_POOLER=true). wrk keeps `connections` clients on
GET /posts/{id} (a read: one statement) and on PATCH /posts/{id} (a write: the update and its
embedding job in one transaction, each client editing its own post with its own token). The
configurations run one at a time (so that their pools never add up past max_connections), in
alternating order over the rounds; req/s is the mean of the rounds, p99 their median. Ratios are
against 1 worker, direct. The database is a scratch one (BENCH_DATABASE_URL, else a throwaway
server), seeded like the hot-path benchmark's.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from bench.decision6 import parse_wrk
from bench.hot_path import POSTS, USERS, seed, wrk
from bench.servers import Uvicorn
from devtools.pgbouncer import pgbouncer
from devtools.postgres_provider import provide
from example_app.core.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "results" / "scale_out.txt"
RECORD_JSON = ROOT / "bench" / "results" / "scale_out.json"
PREFIX = "/api/v1"
CLIENTS = 200  # users with a token and a post of their own (the write load)
POOLER_SIZE = 20  # PgBouncer's server connections


@dataclass(frozen=True)
class Config:
    key: str
    workers: int
    pooled: bool

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, " + (
            "through PgBouncer" if self.pooled else "direct"
        )


CONFIGS = (
    Config("1-direct", 1, False),
    Config("2-direct", 2, False),
    Config("1-pgb", 1, True),
    Config("2-pgb", 2, True),
)
ROUTES = {"read": "GET /posts/{id}", "write": "PATCH /posts/{id} (own post)"}


@dataclass
class Measure:
    config: str
    route: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Results:
    postgres: str
    seconds: int
    connections: int
    rounds: int
    measures: list[Measure] = field(default_factory=list)

    def get(self, config: str, route: str) -> Measure:
        return next(m for m in self.measures if m.config == config and m.route == route)


def scripts(folder: Path, settings: Settings) -> dict[str, Path]:
    """wrk's Lua for each route: the read picks any post; the write, a client's own post, with a
    token signed with the servers' key (`settings`)."""
    from example_app.core.security import create_access_token

    owners = owned_posts()
    tokens = ", ".join(
        json.dumps(f"Bearer {create_access_token(settings, u, timedelta(hours=6))}") for u, _ in owners
    )
    posts = ", ".join(str(post) for _, post in owners)
    any_post = f'"{PREFIX}/posts/" .. math.random(1, {POSTS})'
    read = f'request = function()\n  return wrk.format("GET", {any_post})\nend\n'
    write = (
        f"tokens = {{{tokens}}}\nposts = {{{posts}}}\nn = 0\n"
        "request = function()\n"
        "  local i = math.random(1, #posts)\n"
        "  n = n + 1\n"
        '  local headers = {["Authorization"] = tokens[i], ["Content-Type"] = "application/json"}\n'
        f'  return wrk.format("PATCH", "{PREFIX}/posts/" .. posts[i], headers, '
        "'{\"title\": \"Edited ' .. n .. '\"}')\n"
        "end\n"
    )
    found = {}
    for route, text in (("read", read), ("write", write)):
        found[route] = folder / f"{route}.lua"
        found[route].write_text(text)
    return found


def owned_posts() -> list[tuple[int, int]]:
    """(user, a post of theirs) for the CLIENTS first users: seed() gives post g to user
    1 + g % USERS, so user u owns post u - 1, and user 1 post USERS."""
    return [(u, u - 1 if u > 1 else USERS) for u in range(1, CLIENTS + 1)]


class Server(Uvicorn):
    """example_app.main:app under uvicorn with `workers` processes (what `serve --workers` runs)."""

    def __init__(self, config: Config, database_url: str, log: Path) -> None:
        env = {"DATABASE_URL": database_url, "WEB_CONCURRENCY": str(config.workers)}
        if config.pooled:
            env["DB_BEHIND_POOLER"] = "true"
        super().__init__("example_app.main:app", env, workers=config.workers, log=log)
        self.wait_ready(f"{PREFIX}/health/ready", config.label, timeout=180)

    def stop(self, timeout: float = 40) -> None:
        super().stop(timeout)


def run(seconds: int = 8, connections: int = 32, rounds: int = 2, warmup: int = 2) -> Results:
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))  # the servers and the tokens share it
    samples: dict[tuple[str, str], list[tuple[float, float, float, int]]] = {}
    with ExitStack() as stack:
        server = stack.enter_context(provide("BENCH_DATABASE_URL", dbname="bench"))
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        postgres = seed(server.url)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        lua = scripts(folder, load_settings(DATABASE_URL=server.url))  # SECRET_KEY: the servers'
        pooled_url = stack.enter_context(pgbouncer(server.url, pool_size=POOLER_SIZE))
        for round_ in range(rounds):
            for config in CONFIGS if round_ % 2 == 0 else CONFIGS[::-1]:
                app = Server(
                    config, pooled_url if config.pooled else server.url, folder / f"{config.key}.log"
                )
                try:
                    for route in ROUTES:
                        if warmup:
                            wrk(app.base, lua[route], connections, warmup)
                        measured = parse_wrk(wrk(app.base, lua[route], connections, seconds))
                        samples.setdefault((config.key, route), []).append(measured)
                        print(
                            f"  {config.label:28} {route:5} round {round_ + 1}: {measured[0]:7.0f} req/s"
                            f" p99 {measured[2]:7.1f} ms, {measured[3]} errors",
                            file=sys.stderr,
                        )
                finally:
                    app.stop()
    results = Results(postgres, seconds, connections, rounds)
    for (config_key, route), runs in samples.items():
        results.measures.append(
            Measure(
                config_key,
                route,
                statistics.mean(r[0] for r in runs),
                statistics.median(r[1] for r in runs),
                statistics.median(r[2] for r in runs),
                sum(r[3] for r in runs),
            )
        )
    return results


def report(results: Results) -> str:
    base = {route: results.get(CONFIGS[0].key, route).requests_per_s for route in ROUTES}
    lines = [
        f"The reference app under wrk -c{results.connections}; {results.rounds} rounds of "
        f"{results.seconds} s per configuration and route, in alternating order; PgBouncer in "
        f"transaction mode with {POOLER_SIZE} server connections",
        "",
        f"{'configuration':28} " + " ".join(f"{ROUTES[r]:>44}" for r in ROUTES),
        f"{'':28} "
        + " ".join(
            f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs 1 direct':>9}" for _ in ROUTES
        ),
    ]
    for config in CONFIGS:
        cells = []
        for route in ROUTES:
            m = results.get(config.key, route)
            ratio = f"{m.requests_per_s / base[route]:.2f}x" if base[route] else "-"
            cells.append(f"{m.requests_per_s:9.0f} {m.p50_ms:8.1f} {m.p99_ms:8.1f} {m.errors:7d} {ratio:>11}")
        lines.append(f"{config.label:28} " + " ".join(cells))
    return "\n".join(lines)


def main(seconds: int = 8, connections: int = 32, record: bool = False) -> None:
    results = run(seconds, connections)
    text = report(results)
    print(text)
    if record:
        load = os.getloadavg()[0]
        header = (
            f"# python3 tasks.py bench --name scale-out --record, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores (load average {load:.2f} at the end), {results.postgres}"
        )
        # A named section for the guide; the marker is built from parts, so that this file does
        # not itself look like it holds a section.
        marker = "# --8<" + "-- [{}:scale_out]"
        RECORD.write_text(f"{header}\n{marker.format('start')}\n{text}\n{marker.format('end')}\n")
        RECORD_JSON.write_text(json.dumps(asdict(results), indent=2) + "\n")
        print(f"recorded in {RECORD.relative_to(ROOT)}")
