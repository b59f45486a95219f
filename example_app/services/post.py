"""Business rules for posts. Each method that writes is one transaction and commits it."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.engine import Result, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import defer
from sqlalchemy.sql import Select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.jobs.tasks import defer_embedding
from example_app.models import Post, User
from example_app.models.base import POSTS_AUTHOR_FK
from example_app.schemas.post import PostCreate, PostResponse, PostUpdate, PostWithAuthor
from example_app.schemas.user import AuthorResponse
from example_app.services.errors import (
    InvalidReferenceError,
    NotFoundError,
    PermissionDeniedError,
    violated_constraint,
)
from example_app.services.permissions import may_edit_post
from example_app.services.slugs import slugify

# Reads as rows, not ORM objects: a response is built straight from the columns it shows. Loading
# table objects (identity map, attribute instrumentation) cost more CPU than the query itself;
# writes load the object, which they change. The embedding (hundreds of floats) is never read
# for a response, nor any column that PostResponse does not show.
RESPONSE_COLUMNS = [Post.__table__.c[name] for name in PostResponse.model_fields]  # type: ignore[attr-defined]
# The reads, built once with their values as parameters: building a statement (a tree of Python
# objects, and its cache key) on every request costs more CPU than PostgreSQL spends on it.
# A post's author is its id and name, joined in the same query (one round trip).
POST_WITH_AUTHOR = (
    select(*RESPONSE_COLUMNS, col(User.name).label("author_name"))
    .join(User, col(Post.author_id) == col(User.id))
    .where(col(Post.id) == bindparam("post_id"))
)
# Newest first; id breaks ties so that pages never overlap or skip rows.
PAGE = (
    select(*RESPONSE_COLUMNS)
    .order_by(col(Post.created_at).desc(), col(Post.id).desc())
    .offset(bindparam("skip", type_=Integer))
    .limit(bindparam("limit", type_=Integer))
)
AUTHORS_PAGE = PAGE.where(col(Post.author_id) == bindparam("author_id"))
# The table object, for a write: every column but the embedding, which the embedding job writes.
# raiseload: code that touches what was not loaded fails at once, instead of querying again.
WITHOUT_EMBEDDING = defer(Post.embedding, raiseload=True)  # type: ignore[arg-type]


class PostService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.embedding_job: int | None = None  # the "embed post" job the last write queued

    async def _rows(self, statement: Select[Any], **params: Any) -> Result[Any]:
        # Core on the session's own connection: the session's transaction (or its absence, for
        # a GET), and in the tests their rolled-back one, without the ORM's loading.
        connection: AsyncConnection = await self.db.connection()
        result: Result[Any] = await connection.execute(statement, params)
        return result

    async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Sequence[Row[Any]]:
        """A page of posts as rows: `response_model=list[PostResponse]` reads their attributes."""
        if author_id is None:
            return (await self._rows(PAGE, skip=skip, limit=limit)).all()
        # No "user not found": an id without posts answers [], whether or not it has an
        # account, so this public listing never confirms that an account exists.
        return (await self._rows(AUTHORS_PAGE, skip=skip, limit=limit, author_id=author_id)).all()

    async def get(self, post_id: int, *, for_update: bool = False) -> Post:
        post = await self.db.get(Post, post_id, options=[WITHOUT_EMBEDDING], with_for_update=for_update)
        if post is None:
            raise NotFoundError("Post", post_id)
        return post

    async def get_with_author(self, post_id: int) -> PostWithAuthor:
        row = (await self._rows(POST_WITH_AUTHOR, post_id=post_id)).first()
        if row is None:
            raise NotFoundError("Post", post_id)
        post = row._asdict()
        author = AuthorResponse(id=post["author_id"], name=post.pop("author_name"))
        return PostWithAuthor(**post, author=author)

    async def create(self, author: User, data: PostCreate) -> Post:
        post = Post.model_validate(
            data, update={"author_id": author.id, "slug": slugify(data.title, fallback="post")}
        )
        self.db.add(post)
        try:
            await self.db.flush()  # the INSERT: the foreign key answers, the post gets its id
            assert post.id is not None
            # Queued in this transaction: committed with the post, or rolled back with it.
            self.embedding_job = await defer_embedding(self.db, post.id)
            await self.db.commit()
        except IntegrityError as error:
            # No pre-check: the foreign key answers "does the author exist?" race-free.
            await self.db.rollback()
            if violated_constraint(error) == POSTS_AUTHOR_FK:
                raise InvalidReferenceError(f"author_id {author.id} is not an existing user") from None
            raise
        return post

    async def get_editable(self, actor: User, post_id: int) -> Post:
        # SELECT ... FOR UPDATE: a concurrent edit or delete of the post waits for this
        # transaction, then reads the row again (gone: a 404, not a second 204 or a 500).
        post = await self.get(post_id, for_update=True)  # a missing post is a 404 for everyone
        if not may_edit_post(actor, post):
            raise PermissionDeniedError("Only its author or a superuser may change this post")
        return post

    async def update(self, actor: User, post_id: int, data: PostUpdate) -> Post:
        post = await self.get_editable(actor, post_id)
        changes = data.model_dump(exclude_unset=True)
        if "title" in changes:
            changes["slug"] = slugify(changes["title"], fallback=f"post-{post_id}")
        post.sqlmodel_update(changes)
        if changes.keys() & {"title", "body"}:  # the embedded text changed: embed it again
            self.embedding_job = await defer_embedding(self.db, post_id)
        await self.db.commit()
        return post

    async def delete(self, actor: User, post_id: int) -> None:
        post = await self.get_editable(actor, post_id)
        await self.db.delete(post)
        await self.db.commit()
