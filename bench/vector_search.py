"""Semantic search, measured (ML06): HNSW against an exact scan, at 10k and 100k vectors.

A generated corpus of distinct short sentences (the same for the same seed) is embedded by the
app's model and loaded into `posts` with COPY; the HNSW index is then built from the model's own
definition (a bulk build, as after a restore). Each query runs the app's search statement
(`nearest_posts`) three ways: through the index with pgvector's default candidate list
(hnsw.ef_search = 40), through the index with the app's setting (SEARCH_EF_SEARCH), and as an
exact scan (index scans off: every row compared). Latency is the statement's, on one
connection; recall@10 is the share of the exact 10 nearest that a way returned.

The tests run the same loading and comparison on 3,000 rows (tests/ml/test_search.py).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RECORD = RESULTS / "vector_search.txt"

SIZES = (10_000, 100_000)
QUERIES = 50
K = 10

# --8<-- [start:corpus]
SUBJECTS = [
    "the model", "a neural network", "the database", "our team", "the startup", "a student",
    "the cluster", "the index", "a robot", "the compiler", "a farmer", "the orchestra",
]  # fmt: skip
VERBS = [
    "trains", "indexes", "cooks", "repairs", "paints", "ships",
    "sorts", "predicts", "reads", "grows", "plays", "measures",
]  # fmt: skip
OBJECTS = [
    "images", "vectors", "soup", "bicycles", "portraits", "packages", "records",
    "prices", "novels", "tomatoes", "symphonies", "latency", "queries", "gardens",
]  # fmt: skip
MANNERS = [
    "quickly", "at night", "with care", "in the rain", "on a budget",
    "for fun", "every morning", "under load", "in production", "by hand",
]  # fmt: skip


def corpus(size: int, seed: int) -> list[str]:
    """`size` distinct short sentences, always the same ones for the same seed."""
    rng = random.Random(seed)
    sentences: set[str] = set()
    while len(sentences) < size:
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(MANNERS)]
        sentences.add(" ".join(words) + f" (no. {rng.randrange(1_000_000)})")
    return sorted(sentences)


# --8<-- [end:corpus]


def _vector_text(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def load(conninfo: str, texts: list[str]) -> float:
    """Replace the posts with `texts` and their embeddings; build the HNSW index. Its build time."""
    from example_app.ml.embedding import shared_embedder
    from example_app.models import Post

    (index,) = [i for i in Post.__table__.indexes if i.name == "ix_posts_embedding"]  # type: ignore[attr-defined]
    create_index = str(CreateIndex(index).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    vectors = shared_embedder().embed(texts)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE users, posts RESTART IDENTITY CASCADE")
        conn.execute("DROP INDEX IF EXISTS ix_posts_embedding")
        row = conn.execute(
            "INSERT INTO users (email, hashed_password, name) "
            "VALUES ('corpus@example.com', 'x', 'C') RETURNING id"
        ).fetchone()
        assert row is not None
        with conn.cursor().copy("COPY posts (title, slug, body, author_id, embedding) FROM STDIN") as copy:
            for text, vector in zip(texts, vectors, strict=True):
                copy.write_row((text[:255], "s", text, row[0], _vector_text(vector)))
        conn.execute("SET maintenance_work_mem = '1GB'")  # the graph fits: a much faster build
        started = time.perf_counter()
        conn.execute(create_index)
        built = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE posts")
    return built


@dataclass(frozen=True)
class Way:
    name: str
    p50_ms: float
    p95_ms: float
    recall: float  # recall@10 against the exact scan


@dataclass(frozen=True)
class SizeResult:
    rows: int
    build_s: float
    ways: list[Way]


WAYS = {
    "HNSW, ef_search 40 (pgvector's default)": "SET enable_indexscan = on; SET hnsw.ef_search = 40",
    "HNSW, ef_search {ef} (the app's)": "SET enable_indexscan = on; SET hnsw.ef_search = {ef}",
    "exact scan": "SET enable_indexscan = off",
}


async def _time_queries(
    url: str, setup: str, vectors: np.ndarray[Any, Any]
) -> tuple[list[float], list[list[float]]]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from example_app.services.search import nearest_posts

    engine = create_async_engine(url, pool_size=1)
    latencies, distances = [], []
    try:
        async with engine.connect() as conn:
            for statement in setup.split(";"):
                await conn.execute(text(statement))
            await conn.execute(nearest_posts(vectors[0], K))  # warm: plan cache, first pages
            for vector in vectors:
                started = time.perf_counter()
                rows = (await conn.execute(nearest_posts(vector, K))).all()
                latencies.append((time.perf_counter() - started) * 1000)
                distances.append([float(row.distance) for row in rows])
    finally:
        await engine.dispose()
    return latencies, distances


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(url: str, conninfo: str, rows: int, queries: int) -> SizeResult:
    from example_app.core.config import Settings
    from example_app.ml.embedding import shared_embedder

    ef = Settings.model_fields["SEARCH_EF_SEARCH"].default
    build_s = load(conninfo, corpus(rows, seed=1))
    vectors = shared_embedder().embed(corpus(queries, seed=2))
    timed = {
        name.format(ef=ef): asyncio.run(_time_queries(url, setup.format(ef=ef), vectors))
        for name, setup in WAYS.items()
    }
    exact = timed["exact scan"][1]
    ways = []
    for name, (latencies, distances) in timed.items():
        # a hit counts when it is as near as the exact 10th (ties are as good as each other)
        recall = statistics.mean(
            sum(d <= e[-1] + 1e-6 for d in found) / K for found, e in zip(distances, exact, strict=True)
        )
        ways.append(Way(name, _percentile(latencies, 50), _percentile(latencies, 95), recall))
    return SizeResult(rows, build_s, ways)


def conninfo(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def migrate(database_url: str) -> None:
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(database_url=database_url, configure_logger=False)
    command.upgrade(cfg, "head")


def run(sizes: Sequence[int] = SIZES, queries: int = QUERIES) -> tuple[list[SizeResult], str]:
    from devtools.postgres_provider import provide

    with provide("BENCH_DATABASE_URL", dbname="bench") as server:
        migrate(server.url)
        results = [measure(server.url, conninfo(server.url), rows, queries) for rows in sizes]
        with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
            version = conn.execute("SELECT current_setting('server_version')").fetchone()
            conn.execute("TRUNCATE users, posts RESTART IDENTITY CASCADE")
    return results, f"PostgreSQL {version[0] if version else '?'}"


def report(results: list[SizeResult], server: str) -> str:
    lines = [
        f"Semantic search: {QUERIES} queries, top {K}, cosine distance; {server}",
        f"{'rows':>8}  {'way':42} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10} {'vs exact':>9}",
    ]
    for result in results:
        exact = next(w for w in result.ways if w.name == "exact scan")
        for way in result.ways:
            lines.append(
                f"{result.rows:>8,}  {way.name:42} {way.p50_ms:8.2f} {way.p95_ms:8.2f} {way.recall:10.3f} "
                f"{exact.p50_ms / way.p50_ms:8.1f}x"
            )
        lines.append(f"{'':>8}  HNSW build (m=16, ef_construction=64): {result.build_s:.1f} s")
    return "\n".join(lines)


def main(seconds: int = 0, connections: int = 0, record: bool = False) -> None:
    """`python3 tasks.py bench --name vector-search` (seconds and connections do not apply)."""
    results, server = run()
    table = report(results, server)
    print(table)
    if record:
        RESULTS.mkdir(exist_ok=True)
        RECORD.write_text(table + "\n")
