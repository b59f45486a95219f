"""Semantic search (ML06, ML11): the model loads offline, HNSW matches an exact scan, the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bench import vector_search
from bench.harness import Database, migrate
from example_app.core.config import get_settings
from example_app.ml.embedding import DIMENSIONS, post_text, shared_embedder
from example_app.models import Post
from example_app.services.search import nearest_posts
from tests.support import ROOT, Caller, path

# --8<-- [start:offline]
OFFLINE_LOAD = """
import socket

def refuse(*args, **kwargs):
    raise OSError("the network was touched")

socket.socket.connect = refuse  # every TCP/UDP client goes through one of these
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from example_app.ml.embedding import load_embedder

vectors = load_embedder().embed(["offline", "still offline"])
print(vectors.shape, vectors.dtype)
"""


@pytest.mark.pattern("ML11")
def test_the_embedding_model_loads_without_the_network(tmp_path: Path) -> None:
    # A new process (nothing loaded yet), no network at all, and an empty home: no cache to use.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"(2, {DIMENSIONS}) float32"
    cached = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not [p for p in cached if "wordllama" in p or "huggingface" in p], cached  # no download cache


# --8<-- [end:offline]


@pytest.mark.pattern("ML11")
def test_the_column_holds_what_the_model_gives() -> None:
    from example_app.models.post import EMBEDDING_DIMENSIONS

    assert EMBEDDING_DIMENSIONS == DIMENSIONS == shared_embedder().embed(["x"]).shape[1]


@pytest.mark.pattern("ML11")
def test_embeddings_are_unit_vectors_and_meaning_is_nearer() -> None:
    cat, kitten, market = shared_embedder().embed(
        ["a cat sleeps on the sofa", "the kitten naps on a couch", "stock markets fell sharply today"]
    )
    assert np.allclose([np.linalg.norm(v) for v in (cat, kitten, market)], 1, atol=1e-5)
    assert 1 - cat @ kitten < 1 - cat @ market  # cosine distance: the kitten is nearer
    with pytest.raises(ValueError, match="empty text"):
        shared_embedder().embed([""])  # the model would answer NaN


# --- a generated corpus -------------------------------------------------------------------------

CORPUS_SIZE = 3_000  # the bench does 10k and 100k: python3 tasks.py bench --name vector-search


def explain(conninfo: str, vector: Any, *settings: str) -> str:
    """PostgreSQL's plan for the app's search statement (nearest_posts), after `settings`."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    statement = nearest_posts(vector, 10).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for setting in settings:
            conn.execute(setting)
        return "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN {statement}"))


# --8<-- [start:recall]
@pytest.mark.pattern("ML06")
def test_hnsw_finds_what_an_exact_scan_finds(scratch_url: str) -> None:
    migrate(scratch_url)
    db = Database(scratch_url, "")
    result = vector_search.measure(db, rows=CORPUS_SIZE, queries=50)
    ways = {way["name"]: way for way in result["ways"]}
    app_setting = f"HNSW, ef_search {get_settings().SEARCH_EF_SEARCH} (the app's)"
    # recall@10: the share of the exact 10 nearest that the index returned (ties count as found)
    assert ways[app_setting]["recall"] >= 0.95, ways
    assert ways["exact scan"]["recall"] == 1

    vector = shared_embedder().embed(["a robot paints portraits at night"])[0]
    assert "Index Scan using ix_posts_embedding" in explain(db.conninfo, vector)
    assert "ix_posts_embedding" not in explain(db.conninfo, vector, "SET enable_indexscan = off")


# --8<-- [end:recall]


# --- the route -----------------------------------------------------------------------------------


async def embed_as_the_job_would(db: AsyncSession, post_id: int, title: str, body: str) -> None:
    vector = shared_embedder().embed([post_text(title, body)])[0]
    await db.exec(update(Post).where(col(Post.id) == post_id).values(embedding=vector))


POSTS = {
    "pets": ("Caring for a kitten", "Feed small meals, give it a warm bed and let it nap a lot."),
    "baking": ("Sourdough at home", "Flour, water, salt and a lively starter; bake in a hot oven."),
    "gpu": ("Training on a GPU", "Batch size, mixed precision and data loaders for fast training."),
}


# --8<-- [start:search_route_test]
@pytest.mark.pattern("ML06", "ML11")
async def test_search_returns_the_nearest_posts_with_their_distance(
    client: AsyncClient, caller: Caller, db_session: AsyncSession
) -> None:
    ids = {}
    for key, (title, body) in POSTS.items():
        created = await client.post(
            path("create_post"), json={"title": title, "body": body}, headers=caller.headers
        )
        assert created.status_code == 201
        ids[key] = created.json()["id"]
        if key != "gpu":  # the gpu post's job has not run: it has no embedding yet
            await embed_as_the_job_would(db_session, ids[key], title, body)

    found = await client.get(
        path("search_posts"), params={"q": "looking after a young cat"}, headers=caller.headers
    )
    assert found.status_code == 200
    hits = found.json()
    assert [hit["id"] for hit in hits] == [ids["pets"], ids["baking"]]  # nearest first; no gpu post
    assert hits[0]["title"] == POSTS["pets"][0]
    assert 0 <= hits[0]["distance"] < hits[1]["distance"] <= 2

    gpu = await client.get(
        path("search_posts"), params={"q": "GPU training", "limit": 1}, headers=caller.headers
    )
    assert [hit["id"] for hit in gpu.json()] != [ids["gpu"]]  # not embedded: not found, even by its title


# --8<-- [end:search_route_test]


@pytest.mark.pattern("ML06")
@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"q": "   "}, {"q": "x" * 501}, {"q": "cats", "limit": 0}, {"q": "cats", "limit": 51}, {}],
)
async def test_search_bounds_the_query_and_the_limit(
    client: AsyncClient, caller: Caller, params: dict[str, Any]
) -> None:
    answer = await client.get(path("search_posts"), params=params, headers=caller.headers)
    assert answer.status_code == 422


@pytest.mark.pattern("ML06")
async def test_search_needs_a_logged_in_user(client: AsyncClient) -> None:
    client.headers.pop("Authorization")  # this directory's client is signed in (conftest.py)
    client.headers.pop("Authorization", None)  # tests/ml's client is signed in: call as nobody
    answer = await client.get(path("search_posts"), params={"q": "cats"})
    assert answer.status_code == 401
