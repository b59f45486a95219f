"""Business rules for users. Each method that writes is one transaction and commits it."""

from collections.abc import Sequence

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.security import Passwords
from example_app.models import User
from example_app.models.base import USERS_EMAIL_UNIQUE
from example_app.schemas.user import UserCreate, UserUpdate
from example_app.services.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    violated_constraint,
)
from example_app.services.permissions import may_change_fields, may_list_accounts, may_see_account

EMAIL_TAKEN = "A user with this email already exists"
BAD_CREDENTIALS = "Incorrect email or password"


# --8<-- [start:without_hash]
# Never read for a response: the hash is loaded only where a password is checked
# (authenticate); code that touches it elsewhere fails at once (raiseload) instead of querying.
WITHOUT_HASH = defer(User.hashed_password, raiseload=True)  # type: ignore[arg-type]
# --8<-- [end:without_hash]


# --8<-- [start:user_service]
class UserService:
    def __init__(self, db: AsyncSession, passwords: Passwords) -> None:
        self.db = db
        self.passwords = passwords  # hashing off the event loop, bounded (core/security.py)

    async def list_users(self, actor: User, *, skip: int, limit: int) -> Sequence[User]:
        if not may_list_accounts(actor):
            raise PermissionDeniedError("Only superusers may list users")
        # ORDER BY makes pages stable: without it PostgreSQL may return rows in any order.
        statement = select(User).options(WITHOUT_HASH).order_by(col(User.id)).offset(skip).limit(limit)
        return (await self.db.exec(statement)).all()

    async def get(self, user_id: int) -> User:
        # The caller's own account is already in the session (the token's user): no query.
        user = await self.db.get(User, user_id, options=[WITHOUT_HASH])
        if user is None:
            raise NotFoundError("User", user_id)
        return user

    async def get_for(self, actor: User, user_id: int) -> User:
        # Someone else's account is "not found": the answer does not say whether it exists.
        if not may_see_account(actor, user_id):
            raise NotFoundError("User", user_id)
        return await self.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        statement = select(User).where(User.email == email.lower())
        return (await self.db.exec(statement)).first()

    async def create(self, data: UserCreate, *, is_superuser: bool = False) -> User:
        # The pre-check gives the common case a clear answer without an Argon2 hash...
        if await self.get_by_email(data.email) is not None:
            raise ConflictError(EMAIL_TAKEN)
        await self.db.commit()  # end the read: no pooled connection waits for a hashing slot
        hashed = await self.passwords.hash(data.password)  # CPU-bound: off the loop, bounded
        user = User(email=data.email, name=data.name, hashed_password=hashed, is_superuser=is_superuser)
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

    async def update(self, actor: User, user_id: int, data: UserUpdate) -> User:
        user = await self.get_for(actor, user_id)
        changes = data.model_dump(exclude_unset=True)  # only the fields sent
        if not may_change_fields(actor, user_id, set(changes)):
            raise PermissionDeniedError("Only a superuser may change is_active or is_superuser, of others")
        user.sqlmodel_update(changes)
        await self.db.commit()  # updated_at moves through the column's onupdate
        return user

    async def delete(self, actor: User, user_id: int) -> None:
        if not may_see_account(actor, user_id):
            raise NotFoundError("User", user_id)
        # One statement; the database's ON DELETE CASCADE removes the user's posts.
        result = await self.db.exec(delete(User).where(col(User.id) == user_id))
        if result.rowcount == 0:
            raise NotFoundError("User", user_id)
        await self.db.commit()

    # --8<-- [end:user_service]

    # --8<-- [start:authenticate]
    async def authenticate(self, email: str, password: str) -> User:
        """The user these credentials belong to. Unknown email and wrong password fail alike."""
        user = await self.get_by_email(email)
        await self.db.commit()  # end the read before waiting for a hashing slot
        # Verify against a real hash, or the dummy one: the same work, so the same time.
        hashed = user.hashed_password if user else self.passwords.dummy_hash
        matches = await self.passwords.verify(password, hashed)
        if user is None or not matches:
            raise AuthenticationError(BAD_CREDENTIALS)
        if not user.is_active:  # told only to someone who knows the password
            raise PermissionDeniedError("This account is inactive")
        return user

    # --8<-- [end:authenticate]
