"""Map service errors to HTTP answers, once, for every route."""

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from example_app.services.errors import (
    AuthenticationError,
    ConflictError,
    InvalidReferenceError,
    NotFoundError,
    PermissionDeniedError,
    ServiceError,
    UnavailableError,
)

# --8<-- [start:error_statuses]
STATUS_FOR: dict[type[ServiceError], int] = {
    AuthenticationError: status.HTTP_401_UNAUTHORIZED,  # who are you? (with WWW-Authenticate)
    PermissionDeniedError: status.HTTP_403_FORBIDDEN,  # known, and not allowed
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,  # not 400: the request is fine, the state collides
    InvalidReferenceError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,  # with Retry-After: it may pass
}
RETRY_AFTER_SECONDS = "1"


async def service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    code = next((c for kind, c in STATUS_FOR.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    if code == status.HTTP_401_UNAUTHORIZED:
        headers = {"WWW-Authenticate": "Bearer"}  # RFC 9110: a 401 names the scheme to use
    return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)


# --8<-- [end:error_statuses]


# --8<-- [start:redact]
SECRET_FIELDS = {"password"}


ECHO_ITEMS, ECHO_CHARS = 8, 200  # an error names the bad input; it does not mirror a huge body


def _redact(value: Any) -> Any:
    """The input as the error body may show it: secrets out, long values cut, NaN as text."""
    if isinstance(value, dict):
        return {k: "**redacted**" if k in SECRET_FIELDS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        shown = [_redact(v) for v in value[:ECHO_ITEMS]]
        return [*shown, f"... {len(value) - ECHO_ITEMS} more"] if len(value) > ECHO_ITEMS else shown
    if isinstance(value, str) and len(value) > ECHO_CHARS:
        return value[:ECHO_CHARS] + "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity: echoing one raw would crash this handler
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus the echo of secrets: error bodies end up in proxy and client logs."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if SECRET_FIELDS & {str(part) for part in error.get("loc", ())}:
            error.pop("input", None)
            error.pop("ctx", None)
        elif "input" in error:
            error["input"] = _redact(error["input"])
        errors.append(error)
    return JSONResponse(
        {"detail": jsonable_encoder(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


# --8<-- [end:redact]
