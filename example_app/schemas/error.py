"""The one shape of every error answer, 4xx and 5xx: `{"detail": ..., "request_id": ...}`."""

from typing import Any

from pydantic import BaseModel


class FieldError(BaseModel):
    """One problem with one input: FastAPI's validation error item, as the app sends it."""

    loc: list[str | int]  # where: ["body", "tags", 0], ["path", "user_id"], ["query", "q"]
    msg: str
    type: str  # a machine-readable kind: string_too_long, value_error, invalid_reference...
    input: Any = None  # the rejected value, shortened; left out for secrets and raw bodies
    ctx: dict[str, Any] | None = None  # the constraint's parameters, e.g. {"max_length": 100}


class ErrorResponse(BaseModel):
    # A 422 lists each problem (the same list for a bad body and for a bad reference); every
    # other status says in one sentence what went wrong.
    detail: str | list[FieldError]
    # The request's id (X-Request-ID): what a user quotes, and what its log lines and its
    # prediction rows carry. None only for an error raised outside a request.
    request_id: str | None = None
