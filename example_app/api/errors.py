"""Map service errors to HTTP answers, once, for every route."""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from example_app.services.errors import (
    ConflictError,
    InvalidReferenceError,
    NotFoundError,
    ServiceError,
)

# --8<-- [start:error_statuses]
STATUS_FOR: dict[type[ServiceError], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,  # not 400: the request is fine, the state collides
    InvalidReferenceError: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


async def service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    code = next((c for kind, c in STATUS_FOR.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
    return JSONResponse({"detail": str(exc)}, status_code=code)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)


# --8<-- [end:error_statuses]
