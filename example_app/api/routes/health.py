"""Liveness of the API and reachability of its database."""

import asyncio

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from example_app.api.dependencies import SessionDep
from example_app.core.config import get_settings
from example_app.schemas.health import HealthResponse

router = APIRouter(tags=["health"])


# --8<-- [start:health]
@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Database unreachable"}},
)
async def health(db: SessionDep) -> HealthResponse | JSONResponse:
    try:
        # Bounded: a dead or black-holed database answers 503 quickly instead of hanging.
        async with asyncio.timeout(get_settings().HEALTH_CHECK_TIMEOUT):
            await db.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except TimeoutError:
        return _unavailable(f"no answer within {get_settings().HEALTH_CHECK_TIMEOUT:g} s")
    except Exception as exc:  # any failure to reach the database means "unavailable"
        return _unavailable(f"cannot query the database ({type(exc).__name__})")
    return HealthResponse(status="ok", database="ok")


def _unavailable(detail: str) -> JSONResponse:
    body = HealthResponse(status="error", database="unreachable", detail=detail)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


# --8<-- [end:health]
