"""Timestamps: timezone-aware UTC, stored as `timestamptz`."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)  # aware; datetime.utcnow() is naive and deprecated


# A `datetime` field is SQLModel's UTCDateTime: `timestamptz`, and a naive value is refused
# with "Datetime values must have timezone information" instead of being stored ambiguously.
def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_column_kwargs={"server_default": func.now()})


def updated_at_field() -> Any:
    return Field(
        default_factory=utcnow,
        # Set in Python on every UPDATE the ORM issues, so the new value is known without a
        # refresh (a server-side onupdate would expire it, and reading it would lazy-load).
        sa_column_kwargs={"server_default": func.now(), "onupdate": utcnow},
    )
