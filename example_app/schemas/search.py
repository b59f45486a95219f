"""API schemas for semantic search over posts."""

from example_app.schemas.post import PostResponse


class PostSearchHit(PostResponse):
    # Cosine distance between the query's embedding and the post's: 0 is the same direction,
    # 2 the opposite (give or take a float's rounding). Hits come nearest first.
    distance: float
