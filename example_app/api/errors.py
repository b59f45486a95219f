"""Map errors to HTTP answers, once, for every route: service errors, invalid requests and
database faults. Every answer has the body `ErrorResponse` documents."""

import logging
import math
import socket
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from example_app.api.metrics import SHED_DATABASE_DOWN, SHED_POOL_TIMEOUT
from example_app.api.security_headers import SECURITY_HEADERS
from example_app.core import request_id
from example_app.schemas.error import ErrorResponse
from example_app.services.errors import (
    AuthenticationError,
    ConflictError,
    InvalidReferenceError,
    NotFoundError,
    PermissionDeniedError,
    PredictionFailedError,
    ServiceError,
    UnavailableError,
)

logger = logging.getLogger(__name__)

# --8<-- [start:error_statuses]
STATUS_FOR: dict[type[ServiceError], int] = {
    AuthenticationError: status.HTTP_401_UNAUTHORIZED,  # who are you? (with WWW-Authenticate)
    PermissionDeniedError: status.HTTP_403_FORBIDDEN,  # known, and not allowed
    NotFoundError: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,  # not 400: the request is fine, the state collides
    InvalidReferenceError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PredictionFailedError: status.HTTP_422_UNPROCESSABLE_CONTENT,  # this row: the others are answered
    UnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,  # with Retry-After: it may pass
}
RETRY_AFTER_SECONDS = "1"


def error_body(detail: Any) -> dict[str, Any]:
    """ErrorResponse's fields: what went wrong, and the id of the request it went wrong in."""
    return {"detail": detail, "request_id": request_id.current.get()}


async def service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    code = next((c for kind, c in STATUS_FOR.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    if code == status.HTTP_401_UNAUTHORIZED:
        headers = {"WWW-Authenticate": "Bearer"}  # RFC 9110: a 401 names the scheme to use
    detail: Any = str(exc)
    if isinstance(exc, InvalidReferenceError):  # a 422 is a list of problems, whatever found it
        detail = [{"loc": ["body", *exc.field], "msg": str(exc), "type": "invalid_reference"}]
    return JSONResponse(error_body(detail), status_code=code, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, options_or_http_error)
    for fault in (DBAPIError, PoolTimeoutError, OSError):  # OSError: refused, reset, timed out
        app.add_exception_handler(fault, database_fault_handler)
    app.add_exception_handler(Exception, internal_error_handler)  # a bug: 500, traceback logged


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The one body for a bug too, with the id its traceback is logged under. Starlette calls
    this outside every middleware (uvicorn logs the traceback after): the headers are set here."""
    body = error_body("Internal Server Error")
    headers = {request_id.HEADER: body["request_id"]} if body["request_id"] else {}
    return JSONResponse(
        body, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, headers={**headers, **SECURITY_HEADERS}
    )


# --8<-- [end:error_statuses]


# --8<-- [start:responses]
DESCRIPTIONS = {
    400: "The body cannot be parsed at all (nested too deeply, a broken form)",
    401: "No token, or an invalid or expired one (see WWW-Authenticate)",
    403: "The account is inactive, or may not do this",
    404: "Not found (or not yours to see)",
    409: "Conflicts with existing data",
    413: "The request body is over the size limit",
    422: "The request is invalid: each problem, with where it is",
    429: "Too many attempts; see Retry-After",
    503: "The database (or a model) is unavailable; see Retry-After",
}


def responses(*codes: int, stream: bool = False, **described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status it can answer, with the one error body.

    `responses(401, 404, 503, not_found="No such job")` overrides a description by name. A route
    whose own answer is a stream (server-sent events) says its errors are JSON all the same.
    """
    names = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict"}
    as_json = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    return {
        code: {
            **(as_json if stream else {"model": ErrorResponse}),
            "description": described.get(names.get(code, ""), DESCRIPTIONS[code]),
        }
        for code in codes
    }


# --8<-- [end:responses]


# --8<-- [start:options]
PROBED = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> set[str]:
    """The methods the app's router would route on this path, asked of the router itself.

    Starlette's Allow names the methods of the first route on the path (GET and POST /users are
    two routes), and a list made from the OpenAPI templates cannot tell /posts/search from
    /posts/{post_id:id}: each method is tried against the routes, as a request would be."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    methods = {
        method
        for method in PROBED
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    }
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    return methods


async def options_or_http_error(request: Request, exc: Exception) -> Response:
    """A 405 lists the allowed methods in `Allow`; OPTIONS, the one method that asks for that
    list, gets it with a 204 instead of an error."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse(error_body(exc.detail), status_code=exc.status_code, headers=exc.headers)
    methods = allowed_methods(request)
    allow = {"Allow": ", ".join(sorted(methods | {"OPTIONS"}))}
    if request.method == "OPTIONS":
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=allow)
    return JSONResponse(error_body(exc.detail), status_code=exc.status_code, headers=allow)


# --8<-- [end:options]


# --8<-- [start:database_faults]
# SQLSTATE classes of an outage: 08 connection exception, 53 insufficient resources (too many
# connections), 57 operator intervention (statement_timeout's cancel, shutting down, starting up).
OUTAGE_CLASSES = ("08", "53", "57")


def outage(exc: Exception) -> str | None:
    """One line saying how the database is unavailable, or None when `exc` is not an outage."""
    if isinstance(exc, PoolTimeoutError):
        return "no free connection in the pool within DB_POOL_TIMEOUT"
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        closed = exc.connection_invalidated or "connection is closed" in str(exc.orig)
        if not (closed or sqlstate.startswith(OUTAGE_CLASSES)):
            return None  # a constraint, a syntax error: a bug, which stays a 500 with its traceback
        exc = getattr(exc.orig, "__cause__", None) or exc.orig or exc  # the driver's own error
    if isinstance(exc, TimeoutError):
        return "no answer within DB_CONNECT_TIMEOUT or DB_COMMAND_TIMEOUT"
    if (
        isinstance(exc, OSError)
        and not isinstance(exc, ConnectionError | socket.gaierror)
        and type(exc) is not OSError
    ):
        return None  # FileNotFoundError, PermissionError...: not the network
    first_line = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


async def database_fault_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After for an outage, logged in one line: no traceback for a known cause."""
    reason = outage(exc)
    if reason is None:
        raise exc
    logger.warning("database unavailable: %s %s -> 503 (%s)", request.method, request.url.path, reason)
    shed = SHED_POOL_TIMEOUT if isinstance(exc, PoolTimeoutError) else SHED_DATABASE_DOWN
    if (metrics := request.app.state.metrics) is not None:
        metrics.shed.labels(shed).inc()
    return JSONResponse(
        error_body("The database is unavailable; try again shortly"),
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


# --8<-- [end:database_faults]


# --8<-- [start:redact]
SECRET_FIELDS = {"password", "client_secret", "secret_key", "access_token"}
ECHO_ITEMS, ECHO_CHARS, ECHO_ERRORS = 8, 200, 20  # an error names the bad input; it is no mirror


def _secret(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_FIELDS


def _safe_text(value: str) -> str:
    """Cut to ECHO_CHARS; a lone surrogate, which UTF-8 cannot encode, becomes U+FFFD."""
    cut = value[:ECHO_CHARS] + "..." if len(value) > ECHO_CHARS else value
    return cut if cut.isascii() else cut.encode("utf-8", "replace").decode("utf-8")


def _redact(value: Any) -> Any:
    """The input as the error body may show it: secrets out, long values cut, NaN as text."""
    if isinstance(value, dict):
        shown = list(value.items())[:ECHO_ITEMS]
        return {_safe_text(str(k)): "**redacted**" if _secret(k) else _redact(v) for k, v in shown}
    if isinstance(value, list | tuple):
        shown = [_redact(v) for v in value[:ECHO_ITEMS]]
        return [*shown, f"... {len(value) - ECHO_ITEMS} more"] if len(value) > ECHO_ITEMS else shown
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, bytes):  # a raw body that was not JSON: never mirrored, it may hold anything
        return f"({len(value)} bytes)"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity: echoing one raw would crash this handler
    return value


def _item(error: dict[str, Any]) -> dict[str, Any]:
    loc = [_safe_text(p) if isinstance(p, str) else p for p in error.get("loc", ())]
    item = {"loc": loc, "msg": _safe_text(str(error.get("msg", ""))), "type": str(error.get("type", ""))}
    # At ["body"] the input is the body itself: a JSON object is shown redacted key by key,
    # anything else (a text/plain body, a list) not at all, since it may hold a password.
    whole_body = loc == ["body"] and not isinstance(error.get("input"), dict)
    if "input" in error and not any(_secret(p) for p in loc) and not whole_body:
        item["input"] = _redact(error["input"])
    if "ctx" in error and not any(_secret(p) for p in loc):
        item["ctx"] = _redact(jsonable_encoder(error["ctx"]))
    return item


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus the echo of secrets and of large inputs: error bodies end up in
    proxy and client logs, and a 2 MB body should not come back as a 2 MB error."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    items = [_item(dict(error)) for error in errors[:ECHO_ERRORS]]
    if len(errors) > ECHO_ERRORS:
        more = f"... and {len(errors) - ECHO_ERRORS} more problems"
        items.append({"loc": ["body"], "msg": more, "type": "too_many_errors"})
    return JSONResponse(error_body(items), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


# --8<-- [end:redact]
