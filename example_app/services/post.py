"""Business rules for posts. Each method that writes is one transaction and commits it."""

from collections.abc import Sequence

from sqlalchemy import Integer, bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, joinedload
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.jobs.tasks import defer_embedding
from example_app.models import Post, User
from example_app.models.base import POSTS_AUTHOR_FK
from example_app.schemas.post import PostCreate, PostUpdate
from example_app.services.errors import (
    InvalidReferenceError,
    NotFoundError,
    PermissionDeniedError,
    violated_constraint,
)
from example_app.services.permissions import may_edit_post
from example_app.services.slugs import slugify

# The columns a response shows, and no more: the embedding (a vector of hundreds of floats) is
# never read for a response, and a post's author is its id and name, joined in the same query.
# raiseload: code that touches what was not loaded fails at once, instead of querying again.
WITHOUT_EMBEDDING = defer(Post.embedding, raiseload=True)  # type: ignore[arg-type]
AUTHOR_NAME = joinedload(Post.author, innerjoin=True).load_only(  # type: ignore[arg-type]
    User.id,  # type: ignore[arg-type]
    User.name,  # type: ignore[arg-type]
    raiseload=True,
)
# The reads, built once with their values as parameters: building a statement (a tree of Python
# objects, and its cache key) on every request costs more CPU than PostgreSQL spends on it.
POST_WITH_AUTHOR = (
    select(Post).where(col(Post.id) == bindparam("post_id")).options(WITHOUT_EMBEDDING, AUTHOR_NAME)
)
# Newest first; id breaks ties so that pages never overlap or skip rows.
PAGE = (
    select(Post)
    .options(WITHOUT_EMBEDDING)
    .order_by(col(Post.created_at).desc(), col(Post.id).desc())
    .offset(bindparam("skip", type_=Integer))
    .limit(bindparam("limit", type_=Integer))
)
AUTHORS_PAGE = PAGE.where(col(Post.author_id) == bindparam("author_id"))


class PostService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db
        self.embedding_job: int | None = None  # the "embed post" job the last write queued

    async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Sequence[Post]:
        if author_id is None:
            return (await self.db.exec(PAGE, params={"skip": skip, "limit": limit})).all()
        # No "user not found": an id without posts answers [], whether or not it has an
        # account, so this public listing never confirms that an account exists.
        params = {"skip": skip, "limit": limit, "author_id": author_id}
        return (await self.db.exec(AUTHORS_PAGE, params=params)).all()

    async def get(self, post_id: int) -> Post:
        post = await self.db.get(Post, post_id, options=[WITHOUT_EMBEDDING])
        if post is None:
            raise NotFoundError("Post", post_id)
        return post

    async def get_with_author(self, post_id: int) -> Post:
        # Relationships are lazy="raise": the author is loaded here, explicitly, in the same
        # query (a join: one round trip; selectinload would send a second SELECT).
        post = (await self.db.exec(POST_WITH_AUTHOR, params={"post_id": post_id})).first()
        if post is None:
            raise NotFoundError("Post", post_id)
        return post

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
        post = await self.get(post_id)  # a missing post is a 404 for everyone
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
