"""The `users` table."""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, false, true
from sqlmodel import Field, Relationship

from example_app.models.base import SQLModel
from example_app.models.timestamps import created_at_field, updated_at_field

if TYPE_CHECKING:  # imported for the type checker only: no import cycle at run time
    from example_app.models.post import Post


class User(SQLModel, table=True):
    __tablename__ = "users"
    # Emails are stored lower-cased; the database refuses anything else, so the unique
    # index below really means "one account per address", whatever the case typed.
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lowercase"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=255, unique=True, index=True)
    hashed_password: str = Field(max_length=255)
    name: str = Field(max_length=100)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    # May read, edit and delete every account and post (python3 tasks.py create-superuser).
    is_superuser: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    # lazy="raise": touching user.posts without loading it first is an immediate, clear
    # error (under AsyncSession an implicit load would fail with MissingGreenlet instead).
    # passive_deletes: the database's ON DELETE CASCADE removes the posts.
    posts: list["Post"] = Relationship(
        back_populates="author",
        sa_relationship_kwargs={"lazy": "raise", "passive_deletes": True},
    )
