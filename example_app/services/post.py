"""Business rules for posts. Each method that writes is one transaction and commits it."""

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.models import Post, User
from example_app.models.base import POSTS_AUTHOR_FK
from example_app.schemas.post import PostCreate, PostUpdate
from example_app.services.errors import InvalidReferenceError, NotFoundError, violated_constraint
from example_app.services.slugs import slugify


class PostService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def list_posts(self, *, skip: int, limit: int, author_id: int | None = None) -> Sequence[Post]:
        statement = select(Post)
        if author_id is not None:
            if await self.db.get(User, author_id) is None:
                raise NotFoundError("User", author_id)
            statement = statement.where(Post.author_id == author_id)
        # Newest first; id breaks ties so that pages never overlap or skip rows.
        statement = statement.order_by(col(Post.created_at).desc(), col(Post.id).desc())
        return (await self.db.exec(statement.offset(skip).limit(limit))).all()

    async def get(self, post_id: int) -> Post:
        post = await self.db.get(Post, post_id)
        if post is None:
            raise NotFoundError("Post", post_id)
        return post

    async def get_with_author(self, post_id: int) -> Post:
        # Relationships are lazy="raise": the author is loaded here, explicitly, in one query.
        statement = select(Post).where(Post.id == post_id).options(selectinload(Post.author))  # type: ignore[arg-type]
        post = (await self.db.exec(statement)).first()
        if post is None:
            raise NotFoundError("Post", post_id)
        return post

    async def create(self, data: PostCreate) -> Post:
        post = Post.model_validate(data, update={"slug": slugify(data.title, fallback="post")})
        self.db.add(post)
        try:
            await self.db.commit()
        except IntegrityError as error:
            # No pre-check: the foreign key answers "does the author exist?" race-free.
            await self.db.rollback()
            if violated_constraint(error) == POSTS_AUTHOR_FK:
                raise InvalidReferenceError(f"author_id {data.author_id} is not an existing user") from None
            raise
        return post

    async def update(self, post_id: int, data: PostUpdate) -> Post:
        post = await self.get(post_id)
        changes = data.model_dump(exclude_unset=True)
        if "title" in changes:
            changes["slug"] = slugify(changes["title"], fallback=f"post-{post_id}")
        post.sqlmodel_update(changes)
        await self.db.commit()
        return post

    async def delete(self, post_id: int) -> None:
        result = await self.db.exec(delete(Post).where(col(Post.id) == post_id))
        if result.rowcount == 0:
            raise NotFoundError("Post", post_id)
        await self.db.commit()
