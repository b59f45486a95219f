"""API schemas for logging in."""

from typing import Literal

from pydantic import BaseModel


class Token(BaseModel):
    """The OAuth2 token response: the client sends `Authorization: Bearer <access_token>`."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int  # seconds (RFC 6749, section 5.1)
