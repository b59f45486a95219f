"""Semantic search over posts (ML06): nearest embeddings by cosine distance, through HNSW."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from example_app.ml.embedding import TextEmbedder
from example_app.models import Post


class SearchService:
    def __init__(self, db: AsyncSession, embedder: TextEmbedder, ef_search: int) -> None:
        self.db = db
        self.embedder = embedder
        self.ef_search = ef_search

    # --8<-- [start:search]
    async def search(self, query: str, limit: int) -> Sequence[tuple[Post, float]]:
        """The `limit` posts nearest in meaning to `query`, nearest first, with their distance."""
        vector = self.embedder.embed([query])[0]  # well under a millisecond: no thread needed
        # HNSW looks at ef_search candidates (pgvector's default: 40); more finds more of the
        # true neighbours. SET LOCAL's function form: it takes a bound value, for this transaction.
        await self.db.exec(select(func.set_config("hnsw.ef_search", str(self.ef_search), True)))
        return (await self.db.exec(nearest_posts(vector, limit))).all()

    # --8<-- [end:search]


# --8<-- [start:nearest_posts]
def nearest_posts(vector: npt.NDArray[np.float32], limit: int) -> Select[Post, Any]:
    # `<=>` (cosine distance): the operator the index's vector_cosine_ops serves. PostgreSQL uses
    # the index only for this shape: ORDER BY <distance> LIMIT k. Posts not embedded yet have no
    # distance, and no place in the answer.
    distance = col(Post.embedding).cosine_distance(vector)  # type: ignore[attr-defined]
    return (
        select(Post, distance.label("distance"))
        .options(defer(Post.embedding))  # type: ignore[arg-type]  # 256 floats a row nobody reads
        .where(col(Post.embedding).is_not(None))
        .order_by(distance)
        .limit(limit)
    )


# --8<-- [end:nearest_posts]
