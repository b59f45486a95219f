"""The `posts` table: the guide's second resource, written by a user."""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Relationship

from example_app.models.base import SQLModel
from example_app.models.timestamps import created_at_field, updated_at_field

if TYPE_CHECKING:
    from example_app.models.user import User


class Post(SQLModel, table=True):
    __tablename__ = "posts"
    # Newest-first listings and keyset pagination read this index (built CONCURRENTLY by a
    # hand-written migration, as it would be on a live table).
    __table_args__ = (Index("ix_posts_created_at_id", "created_at", "id"),)

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

    author: "User" = Relationship(back_populates="posts", sa_relationship_kwargs={"lazy": "raise"})
