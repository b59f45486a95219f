"""What the health checks answer."""

from typing import Literal

from pydantic import BaseModel


class HealthResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    detail: str | None = None


class ReadinessResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    models: dict[str, str]  # name -> "version sha256:..." of each loaded model
    errors: dict[str, str]  # what keeps the app from being ready, one line each
