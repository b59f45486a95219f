"""What the health checks answer."""

from typing import Literal

from pydantic import BaseModel


class LivenessResponse(BaseModel):
    status: Literal["ok"]  # the only answer: a process that cannot give it gives none


class HealthResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    detail: str | None = None


class ReadinessResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    schema_revision: str | None  # the database's Alembic revision (None: not migrated, or no answer)
    models: dict[str, str]  # name -> version (and sha256 for an artifact) of each loaded model
    errors: dict[str, str]  # what keeps the app from being ready, one line each
