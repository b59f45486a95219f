"""ML serving, measured (ML02, ML04): where inference runs, and what batching buys, in one run.

1. Inference placement. The real app (example_app.main.create_app) under uvicorn, 1 worker on
   loopback, with inference on the event loop, in the threadpool behind the capacity limiter
   (the app's choice; also with a limit of 1), or in a process pool of 2: one override each, in
   `bench/ml_serving_apps.py`; and the app's choice with every request admitted (no admission
   limit: PREDICTION_MAX_IN_PROGRESS raised), without gc.freeze(), and without both. wrk keeps
   `connections` clients posting 100-row batches to POST /predictions/batch, each waiting out a
   503's Retry-After as a well-behaved client does, while a probe, on one connection, asks GET
   /health every 10 ms: rows/s, and the p99 of that unrelated request. Ratios are against the
   app's choice. The variants take turns in slices (all booted first), so background load
   weighs on each alike.
2. Batching, on the app's choice: 1,000 rows in one POST /predictions/batch against 1,000
   POST /predictions (httpx, as many at a time as the app admits); and the 1,000 rows of the
   prediction log written by the service's one INSERT against the ORM (one flush of 1,000
   objects; a flush per row), on the app's own engine and session factory, with the INSERT
   statements counted.

The rows are the digits data the model was trained on. Every table of predictions and users
lives in a scratch database (BENCH_DATABASE_URL, else a throwaway server), migrated by Alembic.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.servers import Uvicorn
from devtools.postgres_provider import provide
from example_app.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORD = RESULTS / "ml_serving.txt"
RECORD_JSON = RESULTS / "ml_serving.json"  # what the guide's chart is drawn from at build time
PREFIX = "/api/v1"
PREDICT = f"{PREFIX}/predictions"
BATCH = f"{PREFIX}/predictions/batch"
HEALTH = f"{PREFIX}/health"
JSON = {"Content-Type": "application/json"}

BATCH_ROWS = 100  # rows per request under load: a realistic client batch
BODIES = 16  # distinct request bodies wrk rotates through
HEALTH_EVERY_MS = 10  # the unrelated request: one connection, a GET every 10 ms
GOAL_MS = 50.0  # the goal for its p99 with 32 prediction clients
LOG_ROWS = 1_000  # rows per comparison in part 2
ROUNDS = 2  # slices of `seconds` per variant, in alternating order
BATCH_ROUNDS = 5
INSERT_ROUNDS = 3

APP_LIMIT: int = Settings.model_fields["INFERENCE_CONCURRENCY"].default  # the app's default
ADMITTED: int = Settings.model_fields["PREDICTION_MAX_IN_PROGRESS"].default
# Single-row requests in flight at once: as many as the app admits (more are shed with 503).
SINGLE_CONCURRENCY = ADMITTED
OTHER_LIMIT = 1 if APP_LIMIT != 1 else 2


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    app_choice: bool = False


VARIANTS = (
    Variant("on the event loop", {"BENCH_VARIANT": "on-loop"}),
    Variant(
        f"threadpool, limit {APP_LIMIT}",
        {"BENCH_VARIANT": "threadpool", "INFERENCE_CONCURRENCY": str(APP_LIMIT)},
        app_choice=True,
    ),
    Variant(
        f"threadpool, limit {OTHER_LIMIT}",
        {"BENCH_VARIANT": "threadpool", "INFERENCE_CONCURRENCY": str(OTHER_LIMIT)},
    ),
    Variant("process pool of 2", {"BENCH_VARIANT": "process-pool"}),
    # The app's choice without what keeps the loop free for other requests: its admission limit
    # (every prediction request let in), its gc.freeze() at start-up, and neither.
    Variant("app, all admitted", {"BENCH_VARIANT": "threadpool", "PREDICTION_MAX_IN_PROGRESS": "1000"}),
    Variant("app, no gc.freeze", {"BENCH_VARIANT": "threadpool", "BENCH_NO_GC_FREEZE": "1"}),
    Variant(
        "app, neither",
        {"BENCH_VARIANT": "threadpool", "PREDICTION_MAX_IN_PROGRESS": "1000", "BENCH_NO_GC_FREEZE": "1"},
    ),
)
BASELINE = next(v.name for v in VARIANTS if v.app_choice)


@dataclass
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors (timeouts included), but for the shed
    shed: int = 0  # 503 + Retry-After: the app's admission limit turned these away

    @property
    def ok_per_s(self) -> float:
        return max(self.requests - self.errors - self.shed, 0) / self.seconds if self.seconds else 0.0


@dataclass
class Placement:
    variant: str
    app_choice: bool
    rows_per_s: float
    batch_p50_ms: float
    batch_p99_ms: float
    health_p50_ms: float
    health_p99_ms: float
    health_requests: int
    errors: int  # of both loads
    shed: int  # prediction requests answered 503 + Retry-After by the admission limit
    cpu_ms_per_request: float  # the server's CPU time (all its threads and processes) per batch


@dataclass
class Throughput:
    variant: str
    rows_per_s: float
    seconds: float  # for LOG_ROWS rows (median of the rounds)
    statements: int | None = None  # INSERT statements sent for LOG_ROWS rows


@dataclass
class Results:
    postgres: str
    seconds: int
    connections: int
    rounds: int
    load_average: float  # the machine's 1-minute load average when the run started
    predict_ms: float  # predict_proba alone on one batch of BATCH_ROWS rows (median, in-process)
    placement: list[Placement] = field(default_factory=list)
    idle_health_p50_ms: float = 0.0  # /health with no prediction load (app's choice)
    idle_health_p99_ms: float = 0.0
    requests: list[Throughput] = field(default_factory=list)
    inserts: list[Throughput] = field(default_factory=list)


# --- wrk ----------------------------------------------------------------------------------------


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> WrkRun:
    done = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m))", output)
    p50 = re.search(r"\s50%\s+(\S+)", output)
    p99 = re.search(r"\s99%\s+(\S+)", output)
    if done is None or p50 is None or p99 is None:
        raise ValueError(f"not wrk --latency output: {output[:300]!r}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    shed = re.search(r"Shed \(503\): (\d+)", output)
    shed_n = int(shed[1]) if shed else 0
    return WrkRun(int(done[1]), _ms(done[2]) / 1000, _ms(p50[1]), _ms(p99[1]), errors - shed_n, shed_n)


def _lua_headers(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()) + "}"


def batch_script(bodies: Sequence[str], headers: dict[str, str]) -> str:
    """wrk posts the bodies in turn (written into the script: no Lua work per request)."""
    # Long brackets hold JSON as is: it never contains "]==]".
    items = ",\n".join(f"[==[{body}]==]" for body in bodies)
    return (
        f"local bodies = {{\n{items}\n}}\n"
        f"local headers = {_lua_headers({**JSON, **headers})}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n % #bodies + 1\n"
        f'  return wrk.format("POST", "{BATCH}", headers, bodies[n])\n'
        "end\n"
        # A client that honours 503 + Retry-After: it waits that long before its next request.
        # wrk asks delay() for the next request of the connection whose response() just ran.
        "shed = 0\n"
        "local wait_ms = 0\n"
        "response = function(status, headers, body)\n"
        "  if status == 503 then\n"
        "    shed = shed + 1\n"
        '    wait_ms = 1000 * (tonumber(headers["retry-after"] or headers["Retry-After"]) or 1)\n'
        "  end\n"
        "end\n"
        "delay = function()\n"
        "  local ms = wait_ms\n"
        "  wait_ms = 0\n"
        "  return ms\n"
        "end\n"
        "local threads = {}\n"
        "setup = function(thread) table.insert(threads, thread) end\n"
        "done = function(summary, latency, requests)\n"
        "  local total = 0\n"
        '  for _, thread in ipairs(threads) do total = total + thread:get("shed") end\n'
        '  io.write(string.format("Shed (503): %d\\n", total))\n'
        "end\n"
    )


def _wrk_cmd(base: str, script: Path, connections: int, seconds: int) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base,
    ]


def _wrk(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _output(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"bench: wrk failed ({process.returncode}): {err.strip()[:300]}")
    return out


# --- the servers --------------------------------------------------------------------------------


class Server(Uvicorn):
    """One variant under uvicorn; started early, so that the variants boot side by side."""

    def __init__(self, variant: Variant, database_url: str, secret_key: str) -> None:
        self.variant = variant
        env = {
            **variant.env,
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret_key,  # the app signs its access tokens with it
        }
        super().__init__("bench.ml_serving_apps:create_app --factory", env)

    def wait_ready(self, path: str = HEALTH, what: str = "", timeout: float = 90) -> None:
        super().wait_ready(path, what or f"the {self.variant.name!r} app", timeout)

    def settle(self, timeout: float = 30, every: float = 0.25) -> None:
        super().settle(timeout, every)


def authenticate(base: str, row: list[float]) -> dict[str, str]:
    """No headers when predictions are open; else a new user's bearer token (sign up, log in)."""
    probe = httpx.post(f"{base}{PREDICT}", json={"pixels": row}, timeout=30)
    if probe.status_code == 200:
        return {}
    if probe.status_code != 401:
        raise SystemExit(f"bench: POST {PREDICT} answered {probe.status_code}: {probe.text[:300]}")
    email, password = f"bench-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(24)
    signup = httpx.post(
        f"{base}{PREFIX}/users", json={"email": email, "password": password, "name": "Bench"}, timeout=30
    )
    if signup.status_code not in (200, 201):
        raise SystemExit(f"bench: sign-up answered {signup.status_code}: {signup.text[:300]}")
    login = httpx.post(
        f"{base}{PREFIX}/auth/token", data={"username": email, "password": password}, timeout=30
    )
    if login.status_code != 200:
        raise SystemExit(f"bench: log-in answered {login.status_code}: {login.text[:300]}")
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    again = httpx.post(f"{base}{PREDICT}", json={"pixels": row}, headers=headers, timeout=30)
    if again.status_code != 200:
        raise SystemExit(f"bench: POST {PREDICT} with a token answered {again.status_code}")
    return headers


# --- the database -------------------------------------------------------------------------------


def _sql(database_url: str, *statements: str) -> str:
    """Run statements on the scratch database; return its version ("PostgreSQL 16.4, fsync on")."""
    import asyncpg

    async def go() -> str:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            for statement in statements:
                await conn.execute(statement)
            version = str(await conn.fetchval("SHOW server_version")).split()[0]
            # A throwaway local server runs without fsync: commits cost no disk flush there.
            return f"PostgreSQL {version}, fsync {await conn.fetchval('SHOW fsync')}"
        finally:
            await conn.close()

    return asyncio.run(go())


def _migrate(database_url: str) -> str:
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    command.upgrade(cfg, "head")
    return _sql(database_url, "TRUNCATE predictions, users RESTART IDENTITY CASCADE")


def digits_rows() -> list[list[float]]:
    """The 1,797 images of the digits dataset (64 grey levels 0-16 each), as JSON-ready lists.

    Read from the file `sklearn.datasets.load_digits` reads (the last column is the label),
    found without importing scikit-learn, which takes seconds.
    """
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise SystemExit("bench needs scikit-learn's digits data: install the dev requirements")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as csv:
        data = np.loadtxt(csv, delimiter=",")
    return [[float(v) for v in row[:-1]] for row in data]


# --- 1. inference placement ---------------------------------------------------------------------


def predict_ms(rows: list[list[float]], repeats: int = 200) -> float:
    """What inference alone costs per batch of the load: the model on BATCH_ROWS rows, median."""
    import numpy as np

    from example_app.ml.artifact import load_model

    model = load_model()
    batch = np.asarray(rows[:BATCH_ROWS], dtype=np.float32)
    model.predict_proba(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_proba(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


class HealthProbe(threading.Thread):
    """The unrelated request: GET /health on one keep-alive connection, HEALTH_EVERY_MS after
    each answer (like `wrk -c1` with a delay).

    Each answer's latency is kept (not a histogram), so that the slices of every round add up
    to one set of samples per variant. A thread of this process, which only waits meanwhile.
    """

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.address = urlsplit(base)
        self.latencies_ms: list[float] = []
        self.errors = 0
        self._done = threading.Event()

    def run(self) -> None:
        connection = None
        while not self._done.wait(HEALTH_EVERY_MS / 1000):
            if connection is None:
                connection = http.client.HTTPConnection(
                    self.address.hostname or "127.0.0.1", self.address.port, timeout=30
                )
            started = time.perf_counter()
            try:
                connection.request("GET", HEALTH)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = None
                continue
            if response.status == 200:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.errors += 1
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        self._done.set()
        self.join()


def percentile(samples: Sequence[float], p: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


@dataclass
class Tally:
    """One variant's slices, added up."""

    server: Server
    requests: int = 0
    ok: int = 0
    seconds: float = 0.0
    errors: int = 0
    shed: int = 0
    cpu_seconds: float = 0.0
    batch_p50_ms: list[float] = field(default_factory=list)
    batch_p99_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)

    def measure(self, script: Path, seconds: int, connections: int) -> None:
        """One slice: `connections` clients posting batches, the probe meanwhile."""
        probe = HealthProbe(self.server.base)
        cpu_before = self.server.cpu_seconds()
        probe.start()
        try:
            run = parse_wrk(_output(_wrk(_wrk_cmd(self.server.base, script, connections, seconds))))
        finally:
            probe.stop()
        self.cpu_seconds += self.server.cpu_seconds() - cpu_before
        self.requests += run.requests
        self.ok += max(run.requests - run.errors - run.shed, 0)
        self.seconds += run.seconds
        self.errors += run.errors + probe.errors
        self.shed += run.shed
        self.batch_p50_ms.append(run.p50_ms)
        self.batch_p99_ms.append(run.p99_ms)
        self.health_ms += probe.latencies_ms

    def result(self) -> Placement:
        variant = self.server.variant
        return Placement(
            variant=variant.name,
            app_choice=variant.app_choice,
            rows_per_s=self.ok * BATCH_ROWS / self.seconds if self.seconds else 0.0,
            batch_p50_ms=statistics.median(self.batch_p50_ms),
            batch_p99_ms=statistics.median(self.batch_p99_ms),
            health_p50_ms=percentile(self.health_ms, 50),
            health_p99_ms=percentile(self.health_ms, 99),
            health_requests=len(self.health_ms),
            errors=self.errors,
            shed=self.shed,
            cpu_ms_per_request=self.cpu_seconds * 1000 / self.requests if self.requests else 0.0,
        )


def placements(
    servers: Sequence[Server],
    database_url: str,
    script: Path,
    seconds: int,
    connections: int,
    warmup: int,
    rounds: int,
) -> list[Placement]:
    """Each variant for `seconds` per round, in turn; the order reverses every round, so that a
    change in the machine's background load over the run weighs on every variant alike."""
    tallies = [Tally(server) for server in servers]
    for tally in tallies:
        if warmup:  # pools filled, code paths hot
            _output(_wrk(_wrk_cmd(tally.server.base, script, connections, warmup)))
            tally.server.settle()
    for round_ in range(rounds):
        for tally in tallies if round_ % 2 == 0 else tallies[::-1]:
            _sql(database_url, "TRUNCATE predictions")  # every slice writes to an empty log
            tally.measure(script, seconds, connections)
            tally.server.settle()  # wrk leaves requests in flight: they end before the next slice
    results = [tally.result() for tally in tallies]
    for r in results:
        print(
            f"  {r.variant:22} {r.rows_per_s:8.0f} rows/s  /health p99 {r.health_p99_ms:7.1f} ms",
            file=sys.stderr,
        )
    return results


# --- 2. batching --------------------------------------------------------------------------------


async def batch_vs_single(base: str, headers: dict[str, str], rows: list[list[float]]) -> list[Throughput]:
    """The same rows scored by one batch request, then by one request per row."""
    limits = httpx.Limits(max_connections=SINGLE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:

        async def post(path: str, body: dict[str, Any]) -> None:
            response = await client.post(path, json=body)
            if response.status_code != 200:
                raise SystemExit(f"bench: POST {path} answered {response.status_code}: {response.text[:300]}")

        batch = {"rows": [{"pixels": row} for row in rows]}
        await post(BATCH, batch)  # warm-up
        times = []
        for _ in range(BATCH_ROUNDS):
            started = time.perf_counter()
            await post(BATCH, batch)
            times.append(time.perf_counter() - started)
        one_batch = statistics.median(times)

        slots = asyncio.Semaphore(SINGLE_CONCURRENCY)

        async def single(row: list[float]) -> None:
            async with slots:
                await post(PREDICT, {"pixels": row})

        await asyncio.gather(*(single(row) for row in rows[:SINGLE_CONCURRENCY]))  # connections open
        started = time.perf_counter()
        await asyncio.gather(*(single(row) for row in rows))
        singles = time.perf_counter() - started
    n = len(rows)
    return [
        Throughput(f"1 request of {n:,} rows", n / one_batch, one_batch),
        Throughput(f"{n:,} requests of 1 row, {SINGLE_CONCURRENCY} at a time", n / singles, singles),
    ]


async def log_inserts(database_url: str, rows: list[list[float]]) -> list[Throughput]:
    """The prediction log written three ways, on the app's engine and session factory."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.core.config import load_settings
    from example_app.core.database import create_engine
    from example_app.ml.artifact import LoadedModel, Prediction, load_model
    from example_app.ml.inference import Inference
    from example_app.models import PredictionLog
    from example_app.services.prediction import PredictionService

    class Computed(Inference):
        """The prediction is made once, beforehand: only the logging is timed."""

        def __init__(self, prediction: Prediction) -> None:
            super().__init__(concurrency=1, timeout=1.0)
            self.prediction = prediction

        async def predict(self, model: LoadedModel, rows: Any) -> tuple[Prediction, float]:
            return self.prediction, 0.0

    model = load_model()
    import numpy as np

    prediction = model.predict_proba(np.asarray(rows, dtype=np.float32))
    engine = create_engine(load_settings(DATABASE_URL=database_url))
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    inserts = 0

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal inserts
        inserts += statement.lstrip().upper().startswith("INSERT")

    event.listen(engine.sync_engine, "before_cursor_execute", count)

    def records() -> list[PredictionLog]:
        return [
            PredictionLog(
                model_name=model.name,
                model_version=model.version,
                model_sha256=model.sha256,
                input={"pixels": row},
                output={"label": int(label), "probabilities": [round(float(p), 6) for p in probs]},
                latency_ms=0.0,
            )
            for row, label, probs in zip(rows, prediction.labels, prediction.probabilities, strict=True)
        ]

    async def service(session: AsyncSession) -> None:  # what POST /predictions/batch does
        await PredictionService(session, Computed(prediction)).predict(model, rows)

    async def one_flush(session: AsyncSession) -> None:
        session.add_all(records())
        await session.commit()

    async def flush_per_row(session: AsyncSession) -> None:
        for record in records():
            session.add(record)
            await session.flush()
        await session.commit()

    ways = {
        "the service: one INSERT ... VALUES": service,
        "ORM: add all, one flush": one_flush,
        "ORM: add and flush per row": flush_per_row,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    statements: dict[str, int] = {}
    try:
        for _ in range(INSERT_ROUNDS + 1):  # the first round warms up
            for name, way in ways.items():
                inserts = 0
                async with sessions() as session:
                    started = time.perf_counter()
                    await way(session)
                    times[name].append(time.perf_counter() - started)
                statements[name] = inserts
    finally:
        await engine.dispose()
    n = len(rows)
    return [
        Throughput(name, n / statistics.median(t[1:]), statistics.median(t[1:]), statements[name])
        for name, t in times.items()
    ]


# --- the run ------------------------------------------------------------------------------------


def run(
    seconds: int = 8,
    connections: int = 32,
    log_rows: int = LOG_ROWS,
    warmup: int = 2,
    variants: Sequence[Variant] = VARIANTS,
    rounds: int = ROUNDS,
) -> Results:
    """Every comparison, in one run; `warmup` seconds of load before each placement (0: none).

    `variants` must include the app's choice: the ratios and part 2 are measured on it.
    """
    if not any(v.app_choice for v in variants):
        raise ValueError("the variants must include the app's choice")
    if shutil.which("wrk") is None:
        raise SystemExit("bench needs wrk (apt install wrk)")
    load_average = os.getloadavg()[0]
    with (
        provide("BENCH_DATABASE_URL", dbname="bench") as server,
        tempfile.TemporaryDirectory() as tmp,
        ExitStack() as servers,
    ):
        print(f"PostgreSQL: {server.description}", file=sys.stderr)
        secret_key = secrets.token_urlsafe(32)
        started = []
        for variant in variants:  # boot side by side while the database is migrated
            started.append(Server(variant, server.url, secret_key))
            servers.callback(started[-1].stop)
        postgres = _migrate(server.url)
        rows = digits_rows()
        bodies = [
            json.dumps(
                {"rows": [{"pixels": rows[(k * BATCH_ROWS + i) % len(rows)]} for i in range(BATCH_ROWS)]},
                separators=(",", ":"),
            )
            for k in range(BODIES)
        ]
        for each in started:  # all booted before anything is measured: idle servers cost nothing
            each.wait_ready()
        results = Results(postgres, seconds, connections, rounds, load_average, predict_ms(rows))
        # One account for the run (when predictions need one): the servers share key and database.
        headers = authenticate(started[0].base, rows[0])
        for each in started:  # each variant answers a batch correctly before it is measured
            answer = httpx.post(
                f"{each.base}{BATCH}", content=bodies[0], headers={**headers, **JSON}, timeout=60
            )
            if answer.status_code != 200 or len(answer.json()["predictions"]) != BATCH_ROWS:
                raise SystemExit(
                    f"bench: {each.variant.name!r} answered {answer.status_code}: {answer.text[:300]}"
                )
        script = Path(tmp) / "batch.lua"
        script.write_text(batch_script(bodies, headers))
        results.placement = placements(started, server.url, script, seconds, connections, warmup, rounds)
        app = next(each for each in started if each.variant.app_choice)
        for each in started:
            if each is not app:
                each.stop()
        probe = HealthProbe(app.base)
        probe.start()
        time.sleep(seconds)
        probe.stop()
        results.idle_health_p50_ms = percentile(probe.latencies_ms, 50)
        results.idle_health_p99_ms = percentile(probe.latencies_ms, 99)
        results.requests = asyncio.run(batch_vs_single(app.base, headers, rows[:log_rows]))
        servers.close()
        _sql(server.url, "TRUNCATE predictions")
        results.inserts = asyncio.run(log_inserts(server.url, rows[:log_rows]))
    return results


def _ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}x" if base else "    -"


def report(results: Results) -> str:
    base = next(p for p in results.placement if p.variant == BASELINE)
    lines = [
        f"Inference placement: 1 uvicorn worker; wrk -c{results.connections} POST /predictions/batch "
        f"({BATCH_ROWS} rows each) while one client GETs /health every {HEALTH_EVERY_MS} ms; "
        f"{results.rounds} rounds of {results.seconds} s per variant, in alternating order",
        "",
        f"{'variant':26} {'rows/s':>7} {'batch p99':>10} {'/health p50':>12} {'/health p99':>12} "
        f"{'(n)':>5} {'CPU/batch':>10} {'shed':>6} {'errors':>6} {'rows/s vs app':>14} {'p99 vs app':>11}",
    ]
    for p in results.placement:
        name = p.variant + (" (app)" if p.app_choice else "")
        lines.append(
            f"{name:26} {p.rows_per_s:7.0f} {p.batch_p99_ms:7.0f} ms {p.health_p50_ms:9.1f} ms "
            f"{p.health_p99_ms:9.1f} ms {p.health_requests:5d} {p.cpu_ms_per_request:7.1f} ms "
            f"{p.shed:6d} {p.errors:6d} {_ratio(p.rows_per_s, base.rows_per_s):>14} "
            f"{_ratio(p.health_p99_ms, base.health_p99_ms):>11}"
        )
    verdict = "met" if base.health_p99_ms < GOAL_MS else "NOT met"
    lines += [
        "",
        "(n): the /health answers its p50 and p99 come from.",
        f"shed: batches answered 503 + Retry-After by the admission limit (PREDICTION_MAX_IN_PROGRESS, "
        f"{ADMITTED} by default); wrk's clients wait as long as Retry-After says, then send again.",
        "CPU/batch: the server's CPU time (its threads and pool processes) per batch request; "
        f"predict_proba alone on {BATCH_ROWS} rows: {results.predict_ms:.2f} ms.",
        f"/health with no prediction load (app's choice): p50 {results.idle_health_p50_ms:.1f} ms, "
        f"p99 {results.idle_health_p99_ms:.1f} ms",
        f"Goal (/health p99 < {GOAL_MS:.0f} ms with {results.connections} prediction clients, "
        f"app's choice): {verdict}, {base.health_p99_ms:.1f} ms",
    ]
    for title, rows, with_statements in (
        ("Batch vs single requests (app's choice, same rows)", results.requests, False),
        ("Prediction log: writing the rows (app's engine and session)", results.inserts, True),
    ):
        if not rows:
            continue
        first = rows[0]
        lines += ["", title, ""]
        head = f"{'way':42} {'rows/s':>9} {'time':>9}"
        lines.append(head + (f" {'INSERTs':>8}" if with_statements else "") + f" {'vs first':>9}")
        for r in rows:
            line = f"{r.variant:42} {r.rows_per_s:9.0f} {r.seconds * 1000:6.0f} ms"
            line += f" {r.statements:8d}" if with_statements and r.statements is not None else ""
            lines.append(f"{line} {_ratio(r.rows_per_s, first.rows_per_s):>9}")
    return "\n".join(lines)


def _priority() -> str:
    """The run's CPU priority when it was raised: nice, and the session's (Linux autogroup)."""
    found = [f"nice {os.nice(0)}"] if os.nice(0) else []
    try:
        group = int(Path("/proc/self/autogroup").read_text().split("nice")[1])
    except (OSError, IndexError, ValueError):
        group = 0
    found += [f"session nice {group}"] if group else []
    return "".join(f", {item}" for item in found)


def main(seconds: int = 8, connections: int = 32, record: bool = False) -> None:
    results = run(seconds, connections)
    text = report(results)
    print(text)
    data = json.dumps(
        {
            "recorded": time.strftime("%Y-%m-%d"),
            "cores": os.cpu_count(),
            "priority": _priority().lstrip(", "),
            "goal_ms": GOAL_MS,
            "batch_rows": BATCH_ROWS,
            **asdict(results),
        },
        indent=2,
    )
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "bench-ml-serving.json").write_text(data + "\n")
    if record:  # the figures the guide shows: a dated run, with the machine it ran on
        header = (
            f"# python3 tasks.py bench --name ml-serving --record, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores (load average {results.load_average:.2f} at start{_priority()}), "
            f"{results.postgres}, wrk -t1 -c{connections} -d{seconds}s"
        )
        RESULTS.mkdir(exist_ok=True)
        # A named section, so the guide includes it like any other live snippet (the marker is
        # built from parts: this file itself must not look like it holds a section).
        marker = "# --8<" + "-- [{}:ml_serving]"
        RECORD.write_text(
            "# The figures docs/ml/serving.md shows; rewrite with --record.\n"
            f"{marker.format('start')}\n{header}\n{text}\n{marker.format('end')}\n"
        )
        RECORD_JSON.write_text(data + "\n")
