"""API schemas for posts."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from example_app.schemas.common import PatchModel, Storable, Visible
from example_app.schemas.user import AuthorResponse

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), Storable, Visible
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=20_000), Storable]
# Tags are stored in a jsonb array, which refuses "\u0000" as text and varchar do.
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), Storable, Visible]
Tags = Annotated[list[Tag], Field(max_length=20)]


# --8<-- [start:post_schemas]
class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    body: Body
    tags: Tags = []  # no author_id: the author is the caller (the token), never the body


class PostUpdate(PatchModel):
    title: Title | None = None
    body: Body | None = None
    tags: Tags | None = None


class PostResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    slug: str
    body: str
    tags: list[str]
    author_id: int
    created_at: datetime
    updated_at: datetime


class PostWithAuthor(PostResponse):
    author: AuthorResponse  # id and name only; loaded explicitly by the service (selectinload)


# --8<-- [end:post_schemas]
