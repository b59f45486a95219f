"""Reading the prediction log (ML05, ML08): a deep page by keyset against OFFSET, the export
streamed against built whole. Explained on docs/ml/reading-the-log.md.
"""

import hashlib
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from bench import harness as h

if TYPE_CHECKING:
    from fastapi import FastAPI

KEYSET, OFFSET = f"{h.PREFIX}/predictions", f"{h.PREFIX}/bench/predictions/offset"
EXPORTS = {
    "streamed (the app's)": f"{h.PREFIX}/predictions/export",
    "built whole (.all(), one body)": f"{h.PREFIX}/bench/predictions/export-all",
}
ROWS, PAGE, DEPTHS, ROUNDS, SAMPLE_MS = 100_000, 20, (0.0, 0.5, 0.9), 3, 5
EARLY = 0.1  # "memory flat": the growth once this share of the lines has arrived, against the peak
# Both servers wait longer on the database than the app's defaults: on a busy machine, fetching
# 100,000 rows in one `.all()` takes longer than a statement may (a 503).
TIMEOUTS = {"DB_STATEMENT_TIMEOUT": "60", "DB_COMMAND_TIMEOUT": "120"}
# The log, made in SQL: a digits-sized input, a label with its 10 probabilities; pairs of rows
# share a timestamp, as rows of one batch do, so the id has to break ties.
SEED = """
INSERT INTO predictions
       (model_name, model_version, model_sha256, input, output, latency_ms, created_at)
SELECT 'digits', '1.0.0', repeat('0', 64),
       jsonb_build_object('pixels', (SELECT jsonb_agg(((g * 7 + i) %% 17)::float)
                                     FROM generate_series(1, 64) g)),
       jsonb_build_object('label', i %% 10,
                          'probabilities', (SELECT jsonb_agg(round((((g + i) %% 97) / 97.0)::numeric, 6))
                                            FROM generate_series(1, 10) g)),
       1.5, now() - make_interval(secs => %(n)s) + make_interval(secs => i / 2)
FROM generate_series(1, %(n)s) i
"""


def create_app() -> "FastAPI":
    """The app from its factory, with the two routes it is compared against (uvicorn --factory).
    (No `from __future__ import annotations` here: FastAPI reads these routes' annotations.)"""
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

    app.include_router(router, prefix=h.PREFIX)
    return app


def pages(
    db: h.Database, base: str, headers: dict[str, str], depths: Sequence[int], seconds: int, n: int
) -> list[Any]:
    from example_app.services.keyset import Keyset, encode_cursor

    found = []
    for i, depth in enumerate(depths):
        last = "SELECT created_at, id FROM predictions ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1"
        after = f"&after={encode_cursor(Keyset(*db.row(last, (depth - 1,))))}" if depth else ""
        urls = {
            "keyset (after=)": f"{KEYSET}?limit={PAGE}{after}",
            "OFFSET (skip=)": f"{OFFSET}?skip={depth}&limit={PAGE}",
        }
        answers = [httpx.get(f"{base}{url}", headers=headers, timeout=30) for url in urls.values()]
        items = [a.json()["items"] if a.status_code == 200 else a.text for a in answers]
        if items[0] != items[1] or len(items[0]) != PAGE:
            raise SystemExit(f"bench: the two pages at depth {depth} differ, or are not full: {items}")
        for way, url in list(urls.items())[:: 1 if i % 2 == 0 else -1]:  # who goes first alternates
            run = h.wrk(base, h.Load(way, url, headers=headers), n, seconds)
            found.append({"depth": depth, "way": way, "requests_per_s": run.per_s, "p50_ms": run.p50_ms,
                          "p99_ms": run.p99_ms, "errors": run.errors + run.shed})  # fmt: skip
    return sorted(found, key=lambda r: (r["depth"], r["way"]))


def export(server: h.Server, path: str, headers: dict[str, str], rows: int) -> dict[str, Any]:
    """One export read whole, the server's RSS sampled meanwhile: [(seconds, bytes)]."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_MS / 1000):
            samples.append((time.perf_counter(), server.rss()))

    sampler = threading.Thread(target=sample, daemon=True)
    digest, lines, size, first, early = hashlib.sha256(), 0, 0, 0.0, 0.0
    started = time.perf_counter()
    sampler.start()
    try:
        with httpx.stream("GET", f"{server.base}{path}", headers=headers, timeout=600) as response:
            for chunk in response.iter_bytes():
                first = first or time.perf_counter() - started
                lines, size = lines + chunk.count(b"\n"), size + len(chunk)
                digest.update(chunk)
                early = early or (time.perf_counter() if lines >= rows * EARLY else 0.0)
    finally:
        done.set()
        sampler.join()
    if response.status_code != 200 or lines != rows:
        raise SystemExit(f"bench: GET {path} answered {response.status_code}, {lines:,} lines of {rows:,}")
    return {
        "first_byte_s": first, "whole_s": time.perf_counter() - started, "size": size,
        "digest": digest.hexdigest(),
        "peak": max(rss for _, rss in samples), "peak_early": max(rss for t, rss in samples if t <= early),
        "series": [(round(t - started, 3), rss) for t, rss in samples[:: max(len(samples) // 300, 1)]],
    }  # fmt: skip


def run(
    rows: int = ROWS, seconds: int = 5, connections: int = 4, depths: Sequence[float] = DEPTHS,
    rounds: int = ROUNDS, warmup: int = 2,
) -> dict[str, Any]:  # fmt: skip
    with h.database() as db, ExitStack() as stack:
        db.sql(SEED, "VACUUM ANALYZE predictions", params={"n": rows})
        h.seed_posts(db, users=1, posts=0)
        headers = {"Authorization": h.bearer(db, [1])[0]}  # both servers accept its token
        serve = partial(h.Server, db.env(**TIMEOUTS), "bench.log_reading:create_app")
        servers = {way: stack.enter_context(serve()) for way in EXPORTS}
        before = {way: server.rss() for way, server in servers.items()}
        runs: dict[str, list[dict[str, Any]]] = {way: [] for way in EXPORTS}
        for n in range(rounds):
            for way in list(EXPORTS)[:: 1 if n % 2 == 0 else -1]:
                runs[way].append(export(servers[way], EXPORTS[way], headers, rows))
                print(f"  export, {way}: {runs[way][-1]['whole_s']:.1f} s", file=sys.stderr)
        if len({r["digest"] for each in runs.values() for r in each}) != 1:
            raise SystemExit("bench: the two exports sent different bytes")
        streamed, whole = servers.values()
        whole.stop()  # the pages are read from one server, alone
        if warmup:  # the server has only exported so far
            h.wrk(streamed.base, h.Load("", f"{KEYSET}?limit={PAGE}", headers=headers), connections, warmup)
        at = sorted({min(int(rows * d), rows - PAGE) for d in depths})
        paged = pages(db, streamed.base, headers, at, seconds, connections)
        stack.close()  # the servers stop before the tables are emptied
        db.sql("TRUNCATE predictions, users RESTART IDENTITY CASCADE")
    exports = [summary(way, before[way], rs) for way, rs in runs.items()]
    return {"postgres": db.postgres, "rows": rows, "seconds": seconds, "connections": connections,
            "rounds": rounds, "sample_ms": SAMPLE_MS, "pages": paged, "exports": exports}  # fmt: skip


def summary(way: str, before: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One way's exports: medians of the times, the highest growth, the first run's memory over time."""
    mib = 2**20
    return {
        "way": way,
        "rss_before_mib": before / mib,
        "first_byte_s": statistics.median(r["first_byte_s"] for r in runs),
        "whole_s": statistics.median(r["whole_s"] for r in runs),
        "size_mib": runs[0]["size"] / mib,
        "growth_mib": (max(r["peak"] for r in runs) - before) / mib,
        "growth_early_mib": (runs[0]["peak_early"] - before) / mib,
        "series": [(t, rss / mib) for t, rss in runs[0]["series"]],
    }


def report(data: dict[str, Any]) -> str:
    lines = [
        f"Reading the prediction log: {data['rows']:,} rows; the app under uvicorn, 1 process",
        "",
        f"A page of {PAGE} rows, newest first, starting at a depth: wrk -t1 -c{data['connections']} "
        f"-d{data['seconds']}s per way (both answer the same rows)",
    ]
    offset = {r["depth"]: r["requests_per_s"] for r in data["pages"] if r["way"].startswith("OFFSET")}
    spec = ["depth:{:,}", "way:<{}", "req/s:{:.0f}", "p50 ms:{:.2f}", "p99 ms:{:.2f}"]
    lines += h.columns([*spec, "errors", "req/s vs OFFSET"], [
        (r["depth"], r["way"], r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["errors"],
         h.ratio(r["requests_per_s"], offset[r["depth"]]))
        for r in data["pages"]
    ])  # fmt: skip
    streamed, whole = data["exports"]
    lines += [
        "",
        f"Export of all {data['rows']:,} rows as JSON Lines ({streamed['size_mib']:.1f} MiB), each way on a "
        f"server of its own, {data['rounds']} rounds; memory: the server's RSS, sampled every "
        f"{SAMPLE_MS} ms; database timeouts raised to {TIMEOUTS['DB_STATEMENT_TIMEOUT']} s (statement) and "
        f"{TIMEOUTS['DB_COMMAND_TIMEOUT']} s (command) on both",
    ]
    spec = ["way:<{way}", "first byte:{first_byte_ms:.0f} ms", "last byte:{whole_s:.2f} s"]
    spec += ["RSS before:{rss_before_mib:.0f} MiB", "peak growth:{growth_mib:.0f} MiB"]
    spec += [f"growth at {EARLY:.0%} of lines:{{growth_early_mib:.0f}} MiB"]
    lines += h.columns(spec, [{**e, "first_byte_ms": e["first_byte_s"] * 1000} for e in data["exports"]])
    lines.append(
        "built whole / streamed: first byte "
        f"{whole['first_byte_s'] / streamed['first_byte_s']:.0f}x, last byte "
        f"{whole['whole_s'] / streamed['whole_s']:.2f}x, peak memory growth "
        f"{whole['growth_mib'] / max(streamed['growth_mib'], 1):.1f}x"
    )
    return "\n".join(lines)


main = h.scenario("log_reading", run, report)
