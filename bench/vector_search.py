"""Semantic search (ML06): the app's search statement through HNSW against an exact scan, at 10k
and 100k vectors. Explained on docs/ml/search.md.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import psycopg

from bench import harness as h

SIZES, QUERIES, K = (10_000, 100_000), 50, 10
COPY = "COPY posts (title, slug, body, author_id, embedding) FROM STDIN"

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


def load(db: h.Database, texts: list[str]) -> float:
    """Replace the posts with `texts` and their embeddings; build the HNSW index. Its build time."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex

    from example_app.ml.embedding import shared_embedder
    from example_app.models import Post

    (index,) = [i for i in Post.__table__.indexes if i.name == "ix_posts_embedding"]  # type: ignore[attr-defined]
    create_index = str(CreateIndex(index).compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    vectors = ["[" + ",".join(f"{x:.7g}" for x in v) + "]" for v in shared_embedder().embed(texts)]
    db.sql("TRUNCATE users, posts RESTART IDENTITY CASCADE", "DROP INDEX IF EXISTS ix_posts_embedding")
    h.seed_posts(db, 1, 0)
    with psycopg.connect(db.conninfo) as conn, conn.cursor().copy(COPY) as copy:
        for text, vector in zip(texts, vectors, strict=True):
            copy.write_row((text[:255], "s", text, 1, vector))
    # the graph fits in maintenance_work_mem: a much faster build
    [built] = h.timed(partial(db.sql, "SET maintenance_work_mem = '1GB'; " + create_index))
    db.sql("VACUUM ANALYZE posts")
    return built


WAYS = {
    "HNSW, ef_search 40 (pgvector's default)": "SET enable_indexscan = on; SET hnsw.ef_search = 40",
    "HNSW, ef_search {ef} (the app's)": "SET enable_indexscan = on; SET hnsw.ef_search = {ef}",
    "exact scan": "SET enable_indexscan = off",
}


async def time_queries(url: str, setup: str, vectors: Any) -> tuple[list[float], list[list[float]]]:
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


def measure(db: h.Database, rows: int, queries: int) -> dict[str, Any]:
    from example_app.core.config import Settings
    from example_app.ml.embedding import shared_embedder

    ef = Settings.model_fields["SEARCH_EF_SEARCH"].default
    build_s = load(db, corpus(rows, seed=1))
    vectors = shared_embedder().embed(corpus(queries, seed=2))
    timed = {
        name.format(ef=ef): asyncio.run(time_queries(db.url, setup.format(ef=ef), vectors))
        for name, setup in WAYS.items()
    }
    exact = timed["exact scan"][1]
    ways = []
    for name, (latencies, distances) in timed.items():
        # a hit counts when it is as near as the exact 10th (ties are as good as each other)
        hits = [sum(d <= e[-1] + 1e-6 for d in found) / K for found, e in zip(distances, exact, strict=True)]
        p50, p95 = h.percentile(latencies, 50), h.percentile(latencies, 95)
        ways.append({"name": name, "p50_ms": p50, "p95_ms": p95, "recall": statistics.mean(hits)})
    return {"rows": rows, "build_s": build_s, "ways": ways}


def run(sizes: Sequence[int] = SIZES, queries: int = QUERIES) -> dict[str, Any]:
    from example_app.ml.embedding import shared_embedder

    with h.database() as db:
        results = [measure(db, rows, queries) for rows in sizes]
        db.sql("TRUNCATE users, posts RESTART IDENTITY CASCADE")
    # What the search route adds before the statement: the query's embedding.
    embed = [h.timed(partial(shared_embedder().embed, [t]))[0] for t in corpus(queries, seed=2)]
    return {"postgres": db.postgres, "queries": queries, "k": K, "embed_ms": statistics.median(embed) * 1000,
            "sizes": results}  # fmt: skip


def report(data: dict[str, Any]) -> str:
    spec = ["way:<{}", "rows:{:,}", "p50 ms:{:.2f}", "p95 ms:{:.2f}", "recall@10:{:.3f}", "vs exact:{:.1f}x"]
    rows = [
        (w["name"], size["rows"], w["p50_ms"], w["p95_ms"], w["recall"],
         size["ways"][-1]["p50_ms"] / w["p50_ms"])  # the exact scan's p50 against this way's
        for size in data["sizes"] for w in size["ways"]
    ]  # fmt: skip
    builds = [
        f"HNSW build (m=16, ef_construction=64), {s['rows']:,} rows: {s['build_s']:.1f} s"
        for s in data["sizes"]
    ]
    return "\n".join([
        f"Semantic search: {data['queries']} queries, top {data['k']}, cosine distance; the query's "
        f"embedding (not in the latencies): {data['embed_ms']:.2f} ms",
        *h.columns(spec, rows), *builds,
    ])  # fmt: skip


main = h.scenario("vector_search", run, report)
