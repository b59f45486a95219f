"""Business rules for users. Each method that writes is one transaction and commits it."""

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.concurrency import run_in_threadpool

from example_app.core.security import hash_password
from example_app.models import User
from example_app.models.base import USERS_EMAIL_UNIQUE
from example_app.schemas.user import UserCreate, UserUpdate
from example_app.services.errors import ConflictError, NotFoundError, violated_constraint

EMAIL_TAKEN = "A user with this email already exists"


# --8<-- [start:user_service]
class UserService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def list_users(self, *, skip: int, limit: int) -> Sequence[User]:
        # ORDER BY makes pages stable: without it PostgreSQL may return rows in any order.
        statement = select(User).order_by(col(User.id)).offset(skip).limit(limit)
        return (await self.db.exec(statement)).all()

    async def get(self, user_id: int) -> User:
        user = await self.db.get(User, user_id)
        if user is None:
            raise NotFoundError("User", user_id)
        return user

    async def get_by_email(self, email: str) -> User | None:
        statement = select(User).where(User.email == email.lower())
        return (await self.db.exec(statement)).first()

    async def create(self, data: UserCreate) -> User:
        # The pre-check gives the common case a clear answer without an Argon2 hash...
        if await self.get_by_email(data.email) is not None:
            raise ConflictError(EMAIL_TAKEN)
        hashed = await run_in_threadpool(hash_password, data.password)  # CPU-bound: off the loop
        user = User(email=data.email, name=data.name, hashed_password=hashed)
        self.db.add(user)
        try:
            await self.db.commit()
        except IntegrityError as error:
            # ...but only the unique index is race-free: two concurrent requests can both
            # pass the pre-check, and the second commit fails here.
            await self.db.rollback()
            if violated_constraint(error) == USERS_EMAIL_UNIQUE:
                raise ConflictError(EMAIL_TAKEN) from None
            raise
        return user  # expire_on_commit=False: id and defaults are loaded, no refresh needed

    async def update(self, user_id: int, data: UserUpdate) -> User:
        user = await self.get(user_id)
        user.sqlmodel_update(data.model_dump(exclude_unset=True))  # only the fields sent
        await self.db.commit()  # updated_at moves through the column's onupdate
        return user

    async def delete(self, user_id: int) -> None:
        # One statement; the database's ON DELETE CASCADE removes the user's posts.
        result = await self.db.exec(delete(User).where(col(User.id) == user_id))
        if result.rowcount == 0:
            raise NotFoundError("User", user_id)
        await self.db.commit()


# --8<-- [end:user_service]
