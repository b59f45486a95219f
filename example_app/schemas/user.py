"""API schemas for users: what clients send and what they get back."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from example_app.schemas.common import Email, Name, Password, PatchModel


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    email: Email
    password: Password
    name: Name


class UserUpdate(PatchModel):
    name: Name | None = None
    is_active: bool | None = None


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the table object

    id: int
    email: str
    name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    # No password, no hash: this class is the only shape a user leaves the server in.
