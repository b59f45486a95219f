"""Reading the prediction log, measured (ML05, ML08): a deep page by keyset against OFFSET, and the
export streamed against built whole, over a log of 100,000 rows, in one run.

The real app (example_app.main.create_app) under uvicorn, one process each, on a scratch database
(BENCH_DATABASE_URL, else a throwaway server) migrated by Alembic and filled in SQL. The
predictions API has no skip/limit route and no unstreamed export, so `create_app` adds the two it
is compared against to an app of its own, each the app's own statement and answer with one thing
changed (`compared` below): the page positioned by OFFSET instead of the (created_at, id) row
comparison, and the export fetched with `.all()` and sent as one body instead of read through a
server-side cursor.

1. Pages: at each depth, the bench first checks that both routes answer the same rows; then wrk
   keeps `connections` clients asking for that page, one way and then the other (the order
   alternates with the depth): requests/s and latency.
2. Export: each way on a server of its own, started for it, so that its peak memory is its own.
   An httpx client reads the whole body, `rounds` times: the time to the first byte of the body,
   to the last, and the server's resident memory (psutil on the uvicorn pid, sampled every
   SAMPLE_MS) against what it held before the first export. Both bodies must be the same bytes.
"""

import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg

from bench.ml_serving import WrkRun, parse_wrk
from bench.servers import Uvicorn
from bench.vector_search import conninfo, migrate

if TYPE_CHECKING:
    from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORD = RESULTS / "log_reading.txt"
PREFIX = "/api/v1"
KEYSET = f"{PREFIX}/predictions"
OFFSET = f"{PREFIX}/bench/predictions/offset"
STREAMED = f"{PREFIX}/predictions/export"
WHOLE = f"{PREFIX}/bench/predictions/export-all"
EXPORTS = {"streamed (the app's)": STREAMED, "built whole (.all(), one body)": WHOLE}  # way: route

ROWS = 100_000
PAGE = 20  # the keyset route's default page size
DEPTHS = (0.0, 0.5, 0.9)  # where the page starts, as a share of the log
ROUNDS = 3
SAMPLE_MS = 5
EARLY = 0.1  # "memory flat": the growth when this share of the lines has arrived, against the peak
# Both servers wait longer on the database than the app's defaults (5 s statement, 6 s command):
# on a busy machine, fetching 100,000 rows in one `.all()` takes longer, and is answered 503.
TIMEOUTS = {"DB_STATEMENT_TIMEOUT": "60", "DB_COMMAND_TIMEOUT": "120"}

# The log, made in SQL: a digits-sized input (64 grey levels), a label with its 10 probabilities;
# pairs of rows share a timestamp, as rows of one batch do, so the id has to break ties.
SEED = """
INSERT INTO predictions (model_name, model_version, model_sha256, input, output, latency_ms, created_at)
SELECT 'digits', '1.0.0', repeat('0', 64),
       jsonb_build_object('pixels', (SELECT jsonb_agg(((g * 7 + i) %% 17)::float)
                                     FROM generate_series(1, 64) g)),
       jsonb_build_object('label', i %% 10,
                          'probabilities', (SELECT jsonb_agg(round((((g + i) %% 97) / 97.0)::numeric, 6))
                                            FROM generate_series(1, 10) g)),
       1.5, now() - make_interval(secs => %(n)s) + make_interval(secs => i / 2)
FROM generate_series(1, %(n)s) i
"""


# --- the app, and what it is compared against -------------------------------------------------


def create_app() -> "FastAPI":
    """The app, made from the environment's settings, with the two routes it is compared against
    (uvicorn `--factory`)."""
    # Imported here: example_app.main makes its `app` from the environment's settings when it is
    # imported, and the bench itself imports this module before it has a database. (No
    # `from __future__ import annotations` in this module: FastAPI reads the routes' annotations,
    # which name these local imports.)
    from fastapi import APIRouter, Depends, Response
    from sqlalchemy import select
    from sqlmodel import col

    from example_app.api.dependencies import SessionDep, require_active_user
    from example_app.api.params import Limit, Skip
    from example_app.main import create_app as create_reference_app
    from example_app.models import PredictionLog
    from example_app.schemas.prediction import ExportedPrediction, LoggedPrediction, PredictionPage
    from example_app.services.prediction import LOG_COLUMNS

    app = create_reference_app()
    router = APIRouter(dependencies=[Depends(require_active_user)])  # a token, as the log's routes

    # --8<-- [start:compared]
    @router.get("/bench/predictions/offset", response_model=PredictionPage)
    async def offset_page(db: SessionDep, skip: Skip = 0, limit: Limit = PAGE) -> PredictionPage:
        """The keyset route's page and order, positioned by OFFSET: the `skip` rows before it
        are read from the index and the table, then dropped."""
        newest_first = (col(PredictionLog.created_at).desc(), col(PredictionLog.id).desc())
        statement = select(*LOG_COLUMNS).order_by(*newest_first).offset(skip).limit(limit + 1)
        rows = (await db.exec(statement)).all()  # type: ignore[call-overload]  # a column select
        return PredictionPage(items=[LoggedPrediction.model_validate(row) for row in rows[:limit]], next=None)

    @router.get("/bench/predictions/export-all")
    async def export_all(db: SessionDep) -> Response:
        """The export's statement and lines, without a cursor: every row fetched with `.all()`,
        every line joined into one body, then sent."""
        statement = select(*LOG_COLUMNS, col(PredictionLog.input)).order_by(col(PredictionLog.id))
        rows = (await db.exec(statement)).all()  # type: ignore[call-overload]
        body = b"".join(
            ExportedPrediction.model_validate(row).model_dump_json().encode() + b"\n" for row in rows
        )
        return Response(body, media_type="application/x-ndjson")

    # --8<-- [end:compared]

    app.include_router(router, prefix=PREFIX)
    return app


class Server(Uvicorn):
    """`bench.log_reading:create_app` under uvicorn, in a process of its own."""

    def __init__(self, database_url: str, secret_key: str) -> None:
        env = {**TIMEOUTS, "DATABASE_URL": database_url, "SECRET_KEY": secret_key}
        super().__init__("bench.log_reading:create_app --factory", env)

    def wait_ready(self, path: str = f"{PREFIX}/health", what: str = "the app", timeout: float = 120) -> None:
        super().wait_ready(path, what, timeout)


def signed_in(base: str) -> dict[str, str]:
    """A new user's bearer token (sign up, log in): the log's routes take one."""
    email, password = f"bench-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(24)
    body = {"email": email, "password": password, "name": "Bench"}
    signup = httpx.post(f"{base}{PREFIX}/users", json=body, timeout=30)
    if signup.status_code != 201:
        raise SystemExit(f"bench: sign-up answered {signup.status_code}: {signup.text[:300]}")
    login = httpx.post(
        f"{base}{PREFIX}/auth/token", data={"username": email, "password": password}, timeout=30
    )
    if login.status_code != 200:
        raise SystemExit(f"bench: log-in answered {login.status_code}: {login.text[:300]}")
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def seed(database_url: str, rows: int) -> str:
    """Migrate, fill the log with `rows` rows; the server's version."""
    migrate(database_url)
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("TRUNCATE predictions, users RESTART IDENTITY CASCADE")
        conn.execute(SEED, {"n": rows})
        conn.execute("VACUUM ANALYZE predictions")
        version = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    return f"PostgreSQL {version[0].split()[0] if version else '?'}, fsync {fsync[0] if fsync else '?'}"


# --- 1. pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRun:
    depth: int  # rows before the page
    way: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def page_urls(database_url: str, depth: int) -> tuple[str, str]:
    """The keyset URL (the cursor of the row just before the page) and the OFFSET URL."""
    from example_app.services.keyset import Keyset, encode_cursor

    keyset = f"{KEYSET}?limit={PAGE}"
    if depth:
        with psycopg.connect(conninfo(database_url)) as conn:
            row = conn.execute(
                "SELECT created_at, id FROM predictions ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
                (depth - 1,),
            ).fetchone()
        assert row is not None, depth
        keyset += f"&after={encode_cursor(Keyset(row[0], row[1]))}"
    return keyset, f"{OFFSET}?skip={depth}&limit={PAGE}"


def _wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> WrkRun:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    cmd += [*(x for k, v in headers.items() for x in ("-H", f"{k}: {v}")), url]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return parse_wrk(done.stdout)


def pages(
    base: str,
    database_url: str,
    headers: dict[str, str],
    depths: Sequence[int],
    seconds: int,
    connections: int,
    warmup: int,
) -> list[PageRun]:
    if warmup:  # the server has only exported so far: both routes warmed before anything is timed
        for url in page_urls(database_url, 0):
            _wrk(f"{base}{url}", headers, warmup, connections)
    runs = []
    for n, depth in enumerate(depths):
        urls = dict(zip(("keyset (after=)", "OFFSET (skip=)"), page_urls(database_url, depth), strict=True))
        answers = [httpx.get(f"{base}{url}", headers=headers, timeout=30) for url in urls.values()]
        if any(a.status_code != 200 for a in answers) or len({str(a.json()["items"]) for a in answers}) != 1:
            raise SystemExit(
                f"bench: the two pages at depth {depth} differ: {[a.text[:200] for a in answers]}"
            )
        if len(answers[0].json()["items"]) != PAGE:
            raise SystemExit(f"bench: the page at depth {depth} is not full")
        results = {}
        for way, url in list(urls.items())[:: 1 if n % 2 == 0 else -1]:  # alternate who goes first
            wrk = _wrk(f"{base}{url}", headers, seconds, connections)
            results[way] = PageRun(depth, way, wrk.requests / wrk.seconds, wrk.p50_ms, wrk.p99_ms, wrk.errors)
        runs += [results[way] for way in urls]
        print(f"  pages at depth {depth:,}: done", file=sys.stderr)
    return runs


# --- 2. export ----------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """The server's resident memory every SAMPLE_MS: (time, bytes)."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()

    def run(self) -> None:
        import psutil  # type: ignore[import-untyped]

        while True:
            try:
                self.samples.append((time.perf_counter(), self.server.rss()))
            except psutil.NoSuchProcess:  # the server stopped: the export fails, and says so
                return
            if self._done.wait(SAMPLE_MS / 1000):
                return

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak(self, until: float = float("inf")) -> int:
        return max(rss for t, rss in self.samples if t <= until)


@dataclass(frozen=True)
class ExportRun:
    first_byte_s: float
    whole_s: float
    lines: int
    size: int
    digest: str
    peak: int  # the server's highest RSS while it answered
    peak_early: int  # ... until EARLY of the lines had arrived


def export_once(server: Server, path: str, headers: dict[str, str], rows: int) -> ExportRun:
    sampler = RssSampler(server)
    sampler.start()
    digest, lines, size = hashlib.sha256(), 0, 0
    first: float | None = None
    early = float("inf")
    try:
        with httpx.Client(base_url=server.base, headers=headers, timeout=600) as client:
            started = time.perf_counter()
            with client.stream("GET", path) as response:
                if response.status_code != 200:
                    raise SystemExit(f"bench: GET {path} answered {response.status_code}")
                for chunk in response.iter_bytes():
                    now = time.perf_counter()
                    first = now - started if first is None else first
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                    digest.update(chunk)
                    if early == float("inf") and lines >= rows * EARLY:
                        early = now
            whole = time.perf_counter() - started
    finally:
        sampler.stop()
    if lines != rows:
        raise SystemExit(f"bench: GET {path} sent {lines:,} lines for {rows:,} rows")
    return ExportRun(
        first or whole, whole, lines, size, digest.hexdigest(), sampler.peak(), sampler.peak(early)
    )


@dataclass(frozen=True)
class ExportResult:
    way: str
    rss_before: int  # the server's RSS before its first export
    runs: list[ExportRun]

    @property
    def first_byte_s(self) -> float:
        return statistics.median(r.first_byte_s for r in self.runs)

    @property
    def whole_s(self) -> float:
        return statistics.median(r.whole_s for r in self.runs)

    @property
    def growth(self) -> int:
        return max(r.peak for r in self.runs) - self.rss_before

    @property
    def growth_early(self) -> int:
        return self.runs[0].peak_early - self.rss_before


def exports(
    servers: dict[str, Server], headers: dict[str, str], rows: int, rounds: int
) -> list[ExportResult]:
    """Each way on its own server, `rounds` times, the order alternating."""
    before = {way: server.rss() for way, server in servers.items()}
    runs: dict[str, list[ExportRun]] = {way: [] for way in servers}
    for n in range(rounds):
        for way in list(servers)[:: 1 if n % 2 == 0 else -1]:
            runs[way].append(export_once(servers[way], EXPORTS[way], headers, rows))
    digests = {run.digest for each in runs.values() for run in each}
    if len(digests) != 1:
        raise SystemExit("bench: the two exports sent different bytes")
    results = [ExportResult(way, before[way], runs[way]) for way in servers]
    for r in results:
        print(
            f"  export, {r.way}: first byte {r.first_byte_s * 1000:.0f} ms, +{r.growth / 2**20:.0f} MiB",
            file=sys.stderr,
        )
    return results


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Results:
    postgres: str
    rows: int
    seconds: int
    connections: int
    rounds: int
    load_average: float
    pages: list[PageRun]
    exports: list[ExportResult]


def run(
    rows: int = ROWS,
    seconds: int = 5,
    connections: int = 4,
    depths: Sequence[float] = DEPTHS,
    rounds: int = ROUNDS,
    warmup: int = 2,
) -> Results:
    """Every comparison, in one run; `warmup` seconds of load on each page route first (0: none)."""
    from devtools.postgres_provider import provide

    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (apt install wrk)")
    load_average = os.getloadavg()[0]
    with provide("BENCH_DATABASE_URL", dbname="bench") as db, ExitStack() as stack:
        print(f"PostgreSQL: {db.description}", file=sys.stderr)
        os.environ.setdefault("DATABASE_URL", db.url)  # the app's modules read their settings
        postgres = seed(db.url, rows)
        secret_key = secrets.token_urlsafe(32)  # both servers sign and accept the same tokens
        servers = {way: Server(db.url, secret_key) for way in EXPORTS}  # booted side by side
        for server in servers.values():
            stack.callback(server.stop)
        for server in servers.values():
            server.wait_ready()
        streamed = next(iter(servers.values()))
        headers = signed_in(streamed.base)
        for server in servers.values():  # the token works on both; nothing exported yet
            if httpx.get(f"{server.base}{KEYSET}?limit=1", headers=headers, timeout=30).status_code != 200:
                raise SystemExit("bench: GET /predictions failed before the export")
        exported = exports(servers, headers, rows, rounds)
        for server in servers.values():
            if server is not streamed:
                server.stop()  # the pages are read from one server, alone
        at = sorted({min(int(rows * d), rows - PAGE) for d in depths})
        paged = pages(streamed.base, db.url, headers, at, seconds, connections, warmup)
        stack.close()
        with psycopg.connect(conninfo(db.url), autocommit=True) as conn:
            conn.execute("TRUNCATE predictions, users RESTART IDENTITY CASCADE")
    return Results(postgres, rows, seconds, connections, rounds, load_average, paged, exported)


def report(results: Results) -> str:
    mib = 2**20
    lines = [
        f"Reading the prediction log: {results.rows:,} rows; {results.postgres}; "
        "the app under uvicorn, 1 process",
        "",
        f"A page of {PAGE} rows, newest first, starting at a depth: wrk -t1 -c{results.connections} "
        f"-d{results.seconds}s per way (both answer the same rows)",
        f"{'depth':>8}  {'way':16} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'req/s vs OFFSET':>16}",
    ]
    for depth in dict.fromkeys(r.depth for r in results.pages):
        runs = [r for r in results.pages if r.depth == depth]
        offset = next(r for r in runs if r.way.startswith("OFFSET"))
        for r in runs:
            lines.append(
                f"{depth:>8,}  {r.way:16} {r.requests_per_s:7.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
                f"{r.errors:6d} {r.requests_per_s / offset.requests_per_s:15.2f}x"
            )
    streamed, whole = results.exports
    size = streamed.runs[0].size
    lines += [
        "",
        f"Export of all {results.rows:,} rows as JSON Lines ({size / mib:.1f} MiB), each way on a server of "
        f"its own, {results.rounds} rounds; memory: the server's RSS, sampled every {SAMPLE_MS} ms; "
        f"database timeouts raised to {TIMEOUTS['DB_STATEMENT_TIMEOUT']} s (statement) and "
        f"{TIMEOUTS['DB_COMMAND_TIMEOUT']} s (command) on both",
        f"{'way':31} {'first byte':>11} {'last byte':>10} {'RSS before':>11} {'peak growth':>12} "
        f"{f'growth at {EARLY:.0%} of lines':>24}",
    ]
    for e in results.exports:
        lines.append(
            f"{e.way:31} {e.first_byte_s * 1000:8.0f} ms {e.whole_s:8.2f} s {e.rss_before / mib:7.0f} MiB "
            f"{e.growth / mib:8.0f} MiB {e.growth_early / mib:20.0f} MiB"
        )
    lines.append(
        f"built whole / streamed: first byte {whole.first_byte_s / streamed.first_byte_s:.0f}x, "
        f"last byte {whole.whole_s / streamed.whole_s:.2f}x, "
        f"peak memory growth {whole.growth / max(streamed.growth, 1):.1f}x"
    )
    return "\n".join(lines)


def main(seconds: int = 5, connections: int = 4, record: bool = False) -> None:
    """`python3 tasks.py bench --name log-reading`."""
    results = run(seconds=seconds, connections=connections)
    text = report(results)
    print(text)
    if record:  # the figures the guide shows: a dated run, with the machine it ran on
        header = (
            f"# python3 tasks.py bench --name log-reading --record, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores (load average {results.load_average:.2f} at start)"
        )
        # A named section, so the guide includes it like any other live snippet (the marker is
        # built from parts: this file itself must not look like it holds a section).
        marker = "# --8<" + "-- [{}:log_reading]"
        RESULTS.mkdir(exist_ok=True)
        RECORD.write_text(
            "# The figures docs/ml/reading-the-log.md shows; rewrite with --record.\n"
            f"{marker.format('start')}\n{header}\n{text}\n{marker.format('end')}\n"
        )
