"""API schemas for users: what clients send and what they get back."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from example_app.schemas.common import Email, Flag, Name, Password, PatchModel


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    email: Email
    password: Password
    name: Name


class UserUpdate(PatchModel):
    name: Name | None = None
    # Only a superuser may set these, and not on their own account (services/permissions.py).
    is_active: Flag | None = None
    is_superuser: Flag | None = None


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the table object

    id: int
    email: str
    name: str
    is_active: bool
    is_superuser: bool
    created_at: datetime
    updated_at: datetime
    # No password, no hash: this class is the only shape a user leaves the server in.


class AuthorResponse(BaseModel):
    """What anyone may see of a post's author: posts are public, accounts (email) are not."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
