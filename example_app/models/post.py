"""The `posts` table: the guide's second resource, written by a user."""

from datetime import datetime
from typing import TYPE_CHECKING

from pgvector.sqlalchemy import Vector
from sqlalchemy import Connection, Index, Text, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Relationship

from example_app.models.base import SQLModel
from example_app.models.timestamps import created_at_field, updated_at_field

if TYPE_CHECKING:
    from example_app.models.user import User

# The embedding model's output size (example_app/ml/embedding.py; a test checks they agree).
EMBEDDING_DIMENSIONS = 256


class Post(SQLModel, table=True):
    __tablename__ = "posts"
    # Newest-first listings and keyset pagination read this index. On a table with rows, build it
    # CONCURRENTLY: a plain CREATE INDEX blocks every write to the table while it runs.
    __table_args__ = (
        Index("ix_posts_created_at_id", "created_at", "id"),
        # Approximate nearest neighbours (ML06). The operator class names the distance the index
        # serves: vector_cosine_ops answers `ORDER BY embedding <=> :query LIMIT k` (cosine
        # distance), and only that; a query with <-> (L2) would scan the whole table.
        Index(
            "ix_posts_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=255)
    # URL-friendly form of the title, set by the service.
    slug: str = Field(max_length=255)
    body: str = Field(sa_type=Text)
    # Deleting a user deletes their posts, in the database itself (no orphan rows, and no
    # need to load the posts first). Indexed: "posts of an author" is the common query.
    author_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # A PostgreSQL type SQLModel has no annotation for: say it with sa_type.
    tags: list[str] = Field(
        default_factory=list,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": text("'[]'::jsonb")},
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    # The text's embedding (ML11), written by the "embed post" job after each create or edit:
    # NULL until it has run, and search does not find such a post. pgvector's SQLAlchemy type.
    embedding: list[float] | None = Field(default=None, sa_type=Vector(EMBEDDING_DIMENSIONS))

    author: "User" = Relationship(back_populates="posts", sa_relationship_kwargs={"lazy": "raise"})


@event.listens_for(SQLModel.metadata, "before_create")
def _create_vector_extension(target: object, connection: Connection, **kw: object) -> None:
    # posts.embedding's type comes from the pgvector extension, which a migration creates. A
    # bare create_all (the tests compare it with the migrations) needs the extension too.
    connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
