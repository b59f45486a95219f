"""ML serving (ML02, ML04, LC06): where inference runs, what batching and micro-batching buy (and
the floor no batching passes), in one run. Explained on docs/ml/serving.md and docs/ml/micro-batching.md.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import httpx
import numpy as np
import numpy.typing as npt

from bench import harness as h
from example_app.core.config import Settings
from example_app.ml.artifact import DIGITS_MODEL_DIR, LoadedModel, Prediction, load_model
from example_app.ml.inference import Inference
from example_app.resources import Resources
from example_app.services.micro_batch import BatchedAnswer, MicroBatcher

BATCH, PREDICT, HEALTH = f"{h.PREFIX}/predictions/batch", f"{h.PREFIX}/predictions", f"{h.PREFIX}/health"
BATCH_ROWS, BODIES, LOG_ROWS = 100, 16, 1_000  # rows per request under load; bodies wrk rotates
GOAL_MS = 50.0  # /health p99 with 32 prediction clients
APP_LIMIT: int = Settings.model_fields["INFERENCE_CONCURRENCY"].default
ADMITTED: int = Settings.model_fields["PREDICTION_MAX_IN_PROGRESS"].default
PROCESSES = 2  # one per core of the machine the figures were recorded on
APP_CHOICE = f"threadpool, limit {APP_LIMIT}"
BATCH_WAIT_MS: float = Settings.model_fields["MODEL_BATCH_WAIT_MS"].default
BATCH_MAX_ROWS: int = Settings.model_fields["MODEL_BATCH_MAX_ROWS"].default
POOL: int = Settings.model_fields["DB_POOL_SIZE"].default
SINGLES_GOAL = 3.0  # single predictions/s micro-batched, against not batched
NOT_BATCHED, BATCHED = "not batched", f"micro-batched, {BATCH_WAIT_MS:g} ms, {BATCH_MAX_ROWS} rows"
FLOOR = "no model, no log (the floor)"
PLACED = "bench.ml_serving:create_app"  # the app with a stand-in it does not have (create_app below)
SINGLE_VARIANTS = (
    h.Variant(NOT_BATCHED, {"MODEL_BATCH_WAIT_MS": "0"}),
    h.Variant(
        f"not batched, {BATCH_MAX_ROWS} admitted",
        {"MODEL_BATCH_WAIT_MS": "0", "PREDICTION_MAX_IN_PROGRESS": str(BATCH_MAX_ROWS * ADMITTED)},
    ),
    h.Variant(BATCHED),
    h.Variant(
        f"micro-batched, {BATCH_WAIT_MS / 5:g} ms wait", {"MODEL_BATCH_WAIT_MS": str(BATCH_WAIT_MS / 5)}
    ),
    # A batch's worth of singles each read their caller's account on a pooled connection: twice
    # the rows overflow the pool, unless the pool grows with them.
    h.Variant(f"micro-batched, {BATCH_MAX_ROWS * 2} rows", {"MODEL_BATCH_MAX_ROWS": str(BATCH_MAX_ROWS * 2)}),
    h.Variant(
        f"micro-batched, {BATCH_MAX_ROWS * 2} rows, pool of {POOL * 2}",
        {"MODEL_BATCH_MAX_ROWS": str(BATCH_MAX_ROWS * 2), "DB_POOL_SIZE": str(POOL * 2)},
    ),
    h.Variant(FLOOR, {"BENCH_INFERENCE": "answer-only"}, PLACED),
)
VARIANTS = (
    h.Variant("on the event loop", {"BENCH_INFERENCE": "on-loop"}, PLACED),
    h.Variant(APP_CHOICE),
    h.Variant(f"threadpool, limit {3 - APP_LIMIT}", {"INFERENCE_CONCURRENCY": str(3 - APP_LIMIT)}),
    h.Variant(f"process pool of {PROCESSES}", {"BENCH_INFERENCE": "process-pool"}, PLACED),
    h.Variant("app, all admitted", {"PREDICTION_MAX_IN_PROGRESS": "1000"}),
)


# --- the placements the app does not have ----------------------------------------------------------


class OnLoop:
    """The mistake ML02 is about: a CPU-bound call inside `async def` holds the event loop."""

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        started = time.perf_counter()
        prediction = model.predict_proba(rows)  # no await: nothing else runs until it returns
        return prediction, (time.perf_counter() - started) * 1000


_worker_model: LoadedModel | None = None  # in each pool process: the model its initializer loaded


def _load_in_worker(directory: str) -> None:
    global _worker_model
    _worker_model = load_model(directory)


def _predict_in_worker(rows: npt.NDArray[np.float32]) -> Prediction:
    assert _worker_model is not None, "the pool's initializer loads the model"
    return _worker_model.predict_proba(rows)


@dataclass
class ProcessPoolInference:
    """The contract of the app's Inference; rows go to a worker process, the answer comes back pickled."""

    pool: ProcessPoolExecutor

    async def predict(self, model: LoadedModel, rows: npt.NDArray[np.float32]) -> tuple[Prediction, float]:
        started = time.perf_counter()
        prediction = await asyncio.get_running_loop().run_in_executor(self.pool, _predict_in_worker, rows)
        return prediction, (time.perf_counter() - started) * 1000


class AnswerOnly:
    """In the micro-batcher's place, the floor of a single prediction: the route with its token,
    body and model checks and its read-only transaction ended, answered at once, with neither the
    model nor the log. Batching takes a request's inference and INSERT away, never the rest: no
    micro-batching goes below this."""

    async def predict(
        self, model: LoadedModel, row: Sequence[float], request_id: str | None
    ) -> BatchedAnswer:
        return BatchedAnswer(0, {"label": 0, "probabilities": [0.1] * 10}, 0.0)

    async def close(self) -> None:
        return None


def create_app() -> Any:
    """The app from its factory, with BENCH_INFERENCE's stand-in put in its resources once they
    are open: its Inference (a placement it does not have) or its batcher (the floor). Put there,
    not by `dependency_overrides`: with any override set, FastAPI rebuilds every dependency of
    every request (fastapi/dependencies/utils.py), a cost the app does not have."""
    import multiprocessing

    from example_app.main import create_app as create_reference_app

    app, pool = create_reference_app(), None
    stand_in = os.environ["BENCH_INFERENCE"]

    def swap(resources: Resources) -> None:
        if stand_in == "answer-only":
            resources.batcher = cast(MicroBatcher, AnswerOnly())
        else:
            resources.inference = cast(Inference, OnLoop() if pool is None else ProcessPoolInference(pool))

    if stand_in == "process-pool":
        # spawn: a fork of a process that runs threads is not safe; each worker loads the model
        context = multiprocessing.get_context("spawn")
        directory = str(DIGITS_MODEL_DIR)  # the committed artifact: production when seeded
        pool = ProcessPoolExecutor(PROCESSES, context, initializer=_load_in_worker, initargs=(directory,))

    async def swapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def started(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                swap(app.state.resources)
            await send(message)

        await app(scope, receive, started)
        if pool is not None:  # the app has shut down: its pool's processes go too
            pool.shutdown(cancel_futures=True)

    return swapped


# --- the run ------------------------------------------------------------------------------------------


def digits_rows() -> list[list[float]]:
    """The 1,797 images of the digits data (64 grey levels each)."""
    from sklearn.datasets import load_digits

    return [[float(v) for v in row] for row in load_digits().data]


def batch_load(rows: list[list[float]], token: str) -> h.Load:
    """wrk posts BODIES batches of BATCH_ROWS rows in turn."""
    bodies = [
        {"rows": [{"pixels": rows[(k * BATCH_ROWS + i) % len(rows)]} for i in range(BATCH_ROWS)]}
        for k in range(BODIES)
    ]
    return h.post(f"POST /predictions/batch ({BATCH_ROWS} rows)", BATCH, bodies, token)


async def batch_vs_single(base: str, token: str, rows: list[list[float]]) -> list[dict[str, Any]]:
    """The same rows scored by one batch request (median of 5), then by one request per row."""
    limits = httpx.Limits(max_connections=ADMITTED)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": token}, timeout=60, limits=limits
    ) as client:

        async def post(path: str, body: dict[str, Any]) -> None:
            if (response := await client.post(path, json=body)).status_code != 200:
                raise SystemExit(f"bench: POST {path} answered {response.status_code}: {response.text[:300]}")

        batch = {"rows": [{"pixels": row} for row in rows]}
        one = statistics.median(await h.timed_async(lambda: post(BATCH, batch), 5, warmup=1))
        slots = asyncio.Semaphore(ADMITTED)  # as many at once as the app admits

        async def single(row: list[float]) -> None:
            async with slots:
                await post(PREDICT, {"pixels": row})

        [singles] = await h.timed_async(lambda: asyncio.gather(*(single(row) for row in rows)))
    n = len(rows)
    ways = {f"1 request of {n:,} rows": one, f"{n:,} requests of 1 row, {ADMITTED} at a time": singles}
    return [{"variant": way, "seconds": s, "rows_per_s": n / s} for way, s in ways.items()]


async def log_inserts(db: h.Database, rows: list[list[float]]) -> list[dict[str, Any]]:
    """The prediction log written three ways, on the app's engine and sessions (median of 3): by the
    service, then the rows it wrote, as new ORM objects (one flush; a flush per row)."""
    from sqlalchemy import event
    from sqlmodel import col, select

    from example_app.core.database import create_engine, create_sessionmaker
    from example_app.models import PredictionLog
    from example_app.services.prediction import PredictionService

    model = load_model()
    prediction = model.predict_proba(np.asarray(rows, dtype=np.float32))
    written: list[dict[str, Any]] = []  # the rows the service wrote

    class Computed:  # in the service's Inference's place: the prediction is made beforehand
        async def predict(self, model: LoadedModel, batch: Any) -> tuple[Prediction, float]:
            return prediction, 0.0

    async def service(session: Any) -> None:  # what POST /predictions/batch does
        await PredictionService(session, Computed()).predict(model, rows)  # type: ignore[arg-type]

    async def one_flush(session: Any) -> None:
        session.add_all([PredictionLog(**row) for row in written])
        await session.commit()

    async def flush_per_row(session: Any) -> None:
        for row in written:
            session.add(PredictionLog(**row))
            await session.flush()
        await session.commit()

    engine = create_engine(db.settings())
    sessions, inserts = create_sessionmaker(engine), 0

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal inserts
        inserts += statement.lstrip().upper().startswith("INSERT")

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    ways = {"the service: one INSERT ... VALUES": service, "ORM: add all, one flush": one_flush,
            "ORM: add and flush per row": flush_per_row}  # fmt: skip
    found = []
    try:
        for name, way in ways.items():
            times = []
            for _ in range(4):  # the first warms up
                inserts, started = 0, time.perf_counter()
                async with sessions() as session:
                    await way(session)
                times.append(time.perf_counter() - started)
            seconds = statistics.median(times[1:])
            found.append({"variant": name, "seconds": seconds, "rows_per_s": len(rows) / seconds})
            found[-1]["statements"] = inserts
            if way is service:  # the ORM ways write the same rows again
                async with sessions() as session:
                    logged = await session.exec(
                        select(PredictionLog).order_by(col(PredictionLog.id)).limit(len(rows))
                    )
                    written = [r.model_dump(exclude={"id", "created_at"}) for r in logged]
    finally:
        await engine.dispose()
    return found


def run(
    seconds: int = 8, connections: int = 32, rounds: int = 2, warmup: int = 2, log_rows: int = LOG_ROWS,
    variants: tuple[h.Variant, ...] = VARIANTS,
) -> dict[str, Any]:  # fmt: skip
    rows = digits_rows()
    with h.database() as db:
        h.seed_posts(db, 1, 0)  # the account the load posts as
        [token] = h.bearer(db, [1])
        bodies = [{"pixels": row} for row in rows[:BODIES]]  # the single predictions wrk sends
        load = batch_load(rows, token)

        def answers_a_batch(variant: h.Variant, server: h.Server) -> None:
            body = {"rows": [{"pixels": row} for row in rows[:BATCH_ROWS]]}
            answer = httpx.post(
                f"{server.base}{BATCH}", json=body, headers={"Authorization": token}, timeout=60
            )
            if answer.status_code != 200 or len(answer.json()["predictions"]) != BATCH_ROWS:
                raise SystemExit(f"bench: {variant.name} answered {answer.status_code}: {answer.text[:300]}")

        def measure(variants: Sequence[h.Variant], load: h.Load, **check: Any) -> list[h.Measure]:
            return h.compare(
                variants, {load.label: load}, db.env(), seconds=seconds, connections=connections,
                rounds=rounds, warmup=warmup, probe=HEALTH, before=lambda: db.sql("TRUNCATE predictions"),
                **check,
            )  # fmt: skip

        measures = measure(variants, load, check=answers_a_batch)
        singles = measure(SINGLE_VARIANTS, h.post("POST /predictions (1 row)", PREDICT, bodies, token))
        with h.Server(db.env()) as app, h.Probe(app.base, HEALTH) as idle:
            time.sleep(seconds)
        with h.Server(db.env()) as app:
            requests = asyncio.run(batch_vs_single(app.base, token, rows[:log_rows]))
        db.sql("TRUNCATE predictions")
        inserts = asyncio.run(log_inserts(db, rows[:log_rows]))
    placement = [
        served(m, m.variant == APP_CHOICE, rows_per_s=m.ok_per_s * BATCH_ROWS, batch_p99_ms=m.p99_ms)
        for m in measures
    ]
    single_rows = [
        served(m, m.variant == BATCHED, baseline=m.variant == NOT_BATCHED, floor=m.variant == FLOOR,
               ok_per_s=m.ok_per_s, p50_ms=m.p50_ms, p99_ms=m.p99_ms)
        for m in singles
    ]  # fmt: skip
    return {
        "postgres": db.postgres, "seconds": seconds, "connections": connections, "rounds": rounds,
        "goal_ms": GOAL_MS, "batch_rows": BATCH_ROWS, "placement": placement,
        "singles": single_rows, "singles_goal": SINGLES_GOAL, "batch_wait_ms": BATCH_WAIT_MS,
        "batch_max_rows": BATCH_MAX_ROWS, "pool_size": POOL,
        "idle_health_p50_ms": h.percentile(idle.latencies_ms, 50),
        "idle_health_p99_ms": h.percentile(idle.latencies_ms, 99),
        "requests": requests, "inserts": inserts,
    }  # fmt: skip


def served(m: h.Measure, app_choice: bool, **more: Any) -> dict[str, Any]:
    """A measure as the record names it (the probe's requests are /health's)."""
    return {
        "variant": m.variant, "app_choice": app_choice, **more, "health_p50_ms": m.probe_p50_ms,
        "health_p99_ms": m.probe_p99_ms, "health_requests": m.probe_n, "errors": m.errors, "shed": m.shed,
        "cpu_ms_per_request": m.cpu_ms,
    }  # fmt: skip


def report(data: dict[str, Any]) -> str:
    base = next(p for p in data["placement"] if p["app_choice"])
    lines = [
        f"Inference placement: 1 uvicorn worker; wrk -c{data['connections']} POST /predictions/batch "
        f"({BATCH_ROWS} rows each) while one client GETs /health every 10 ms; {data['rounds']} rounds of "
        f"{data['seconds']} s per variant, in alternating order",
        "",
    ]
    spec = ["variant:<{}", "rows/s:{:.0f}", "batch p99:{:.0f} ms", "/health p50:{:.1f} ms"]
    spec += ["/health p99:{:.1f} ms", "(n)", "CPU/batch:{:.1f} ms", "shed"]
    spec += ["errors", "rows/s vs app", "p99 vs app"]
    lines += h.columns(spec, [
        (p["variant"] + (" (app)" if p["app_choice"] else ""), p["rows_per_s"], p["batch_p99_ms"],
         p["health_p50_ms"], p["health_p99_ms"], p["health_requests"], p["cpu_ms_per_request"], p["shed"],
         p["errors"], h.ratio(p["rows_per_s"], base["rows_per_s"]),
         h.ratio(p["health_p99_ms"], base["health_p99_ms"]))
        for p in data["placement"]
    ])  # fmt: skip
    lines += [
        "",
        "shed: batches answered 503 + Retry-After by the admission limit (PREDICTION_MAX_IN_PROGRESS, "
        f"{ADMITTED} by default); wrk's clients wait as long as Retry-After says, then send again.",
        f"/health with no prediction load (app's choice): p50 {data['idle_health_p50_ms']:.1f} ms, "
        f"p99 {data['idle_health_p99_ms']:.1f} ms",
        f"Goal (/health p99 < {GOAL_MS:.0f} ms with {data['connections']} prediction clients, app's choice): "
        f"{h.met(base['health_p99_ms'] < GOAL_MS)}, {base['health_p99_ms']:.1f} ms",
    ]
    lines += ["", *singles_report(data)]
    for title, ways in (
        ("Batch vs single requests (app's choice, same rows)", data["requests"]),
        ("Prediction log: writing the rows (app's engine and session)", data["inserts"]),
    ):
        spec = ["way:<{}", "rows/s:{:.0f}", "time:{:.0f} ms", "INSERTs", "vs first"]
        rows = [
            (w["variant"], w["rows_per_s"], w["seconds"] * 1000, w.get("statements") or "",
             h.ratio(w["rows_per_s"], ways[0]["rows_per_s"]))
            for w in ways
        ]  # fmt: skip
        lines += ["", title, "", *h.columns(spec, rows)]
    return "\n".join(lines)


def singles_report(data: dict[str, Any]) -> list[str]:
    singles, goal, ms = data["singles"], data["singles_goal"], data["goal_ms"]
    base = next(p for p in singles if p["baseline"])
    app = next(p for p in singles if p["app_choice"])
    floor = next(p for p in singles if p["floor"])
    spec = ["variant:<{}", "ok/s:{:.0f}", "p50:{:.1f} ms", "p99:{:.0f} ms"]
    spec += ["/health p99:{:.1f} ms", "(n)", "CPU/req:{:.2f} ms", "shed", "errors", "ok/s vs not batched"]
    rows = [
        (p["variant"] + (" (app)" if p["app_choice"] else ""), p["ok_per_s"], p["p50_ms"], p["p99_ms"],
         p["health_p99_ms"], p["health_requests"], p["cpu_ms_per_request"], p["shed"], p["errors"],
         h.ratio(p["ok_per_s"], base["ok_per_s"]))
        for p in singles
    ]  # fmt: skip
    ratio = app["ok_per_s"] / base["ok_per_s"] if base["ok_per_s"] else 0.0
    return [
        f"Single predictions: wrk -c{data['connections']} POST /predictions (1 row each) while one client "
        f"GETs /health every 10 ms; micro-batching: MODEL_BATCH_WAIT_MS, MODEL_BATCH_MAX_ROWS",
        "",
        *h.columns(spec, rows),
        "",
        "ok/s: answered 200; shed: answered 503 + Retry-After by the admission limit (the client waits).",
        f"Goal (single predictions/s micro-batched >= {goal:g}x not batched): {h.met(ratio >= goal)}, "
        f"{ratio:.2f}x",
        f"Ceiling: the floor (the route with neither model nor log) answers "
        f"{h.ratio(floor['ok_per_s'], base['ok_per_s'])} not batched; micro-batched answers "
        f"{h.ratio(app['ok_per_s'], floor['ok_per_s'])} the floor",
        f"Goal (p99 of the single predictions < {ms:.0f} ms, micro-batched): {h.met(app['p99_ms'] < ms)}, "
        f"{app['p99_ms']:.1f} ms",
        f"Goal (/health p99 < {ms:.0f} ms, micro-batched): {h.met(app['health_p99_ms'] < ms)}, "
        f"{app['health_p99_ms']:.1f} ms",
    ]


main = h.scenario(
    "ml_serving", run, report, lambda data: {"ml_serving_batching": "\n".join(singles_report(data))}
)
