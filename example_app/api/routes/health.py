"""Liveness of the API, reachability of its database, and readiness to serve predictions."""

import asyncio

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.api.dependencies import ModelsDep, SessionDep, SettingsDep
from example_app.schemas.health import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


# --8<-- [start:health]
@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Database unreachable"}},
)
async def health(db: SessionDep, settings: SettingsDep) -> HealthResponse | JSONResponse:
    problem = await database_problem(db, settings.HEALTH_CHECK_TIMEOUT)
    if problem is not None:
        body = HealthResponse(status="error", database="unreachable", detail=problem)
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return HealthResponse(status="ok", database="ok")


async def database_problem(db: SessionDep, seconds: float) -> str | None:
    """None when the database answers within `seconds`; otherwise one line saying how it failed."""
    # Bounded: a dead or black-holed database answers 503 quickly instead of hanging. The probe
    # runs in a session of its own, on the same database, so that an overrun can be left behind:
    # cancelling it means closing a connection that gets no answer, which takes seconds more.
    probe = asyncio.ensure_future(_select_one(db))
    done, _ = await asyncio.wait({probe}, timeout=seconds)
    if not done:
        probe.cancel()
        _overrun.add(probe)  # held until it has finished cleaning up
        probe.add_done_callback(_overrun.discard)
        return f"no answer within {seconds:g} s"
    if (exc := probe.exception()) is not None:  # any failure to reach the database: unavailable
        return f"cannot query the database ({type(exc).__name__})"
    return None


_overrun: set[asyncio.Future[None]] = set()


async def _select_one(db: SessionDep) -> None:
    # Like the request's own session (get_db): a GET's has no transaction, so this is one round trip.
    async with AsyncSession(db.bind, execution_options=db.sync_session.execution_options) as session:
        await session.exec(text("SELECT 1"))  # type: ignore[call-overload]


# --8<-- [end:health]


# --8<-- [start:ready]
@router.get(
    "/health/ready",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "A model is not loaded, or no database"}},
)
async def ready(db: SessionDep, models: ModelsDep, settings: SettingsDep) -> ReadinessResponse | JSONResponse:
    """Ready means: every model loaded (checksum verified) and the database answering."""
    problem = await database_problem(db, settings.HEALTH_CHECK_TIMEOUT)
    body = ReadinessResponse(
        status="ok" if models.ready and problem is None else "error",
        database="ok" if problem is None else "unreachable",
        models={name: f"{m.version} sha256:{m.sha256[:12]}" for name, m in models.models.items()},
        errors={**models.errors, **({"database": problem} if problem else {})},
    )
    if body.status != "ok":
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return body


# --8<-- [end:ready]
