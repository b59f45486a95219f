"""The probes: liveness (the process answers), readiness (it can serve), and /health, the
database's reachability alone, which the benches and monitors of earlier releases call."""

import time

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import TextClause, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.api.dependencies import ModelsDep, ResourcesDep, SessionDep, SettingsDep
from example_app.api.probes import probe_database
from example_app.core.config import Settings
from example_app.schemas.health import HealthResponse, JobsHealth, LivenessResponse, ReadinessResponse
from example_app.services.queue_health import read_queue_health

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
    _, problem = await query_database(db, SELECT_ONE, seconds)
    return problem


SELECT_ONE = text("SELECT 1")
REVISIONS = text("SELECT version_num FROM alembic_version")


async def query_database(db: SessionDep, query: TextClause, seconds: float) -> tuple[set[str], str | None]:
    """The query's first column and None, or nothing and one line saying how the database failed."""
    found, problem = await probe_database(db, lambda session: _first_column(session, query), seconds)
    return found or set(), problem


async def _first_column(session: AsyncSession, query: TextClause) -> set[str]:
    try:
        return {str(value) for value in (await session.exec(query)).scalars()}  # type: ignore[call-overload]
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE:  # never migrated: no revision
            return set()
        raise


UNDEFINED_TABLE = "42P01"


# --8<-- [end:health]


# --8<-- [start:live]
@router.get("/health/live", response_model=LivenessResponse)
async def live() -> LivenessResponse:
    """The restart probe: the process and its event loop answer. It asks nothing else (no
    database, no model), so an outage elsewhere never gets a healthy process restarted."""
    return LivenessResponse(status="ok")


# --8<-- [end:live]


# --8<-- [start:ready]
@router.get(
    "/health/ready",
    response_model=ReadinessResponse,
    responses={503: {"model": ReadinessResponse, "description": "Not ready: each reason in errors"}},
)
async def ready(
    db: SessionDep, models: ModelsDep, resources: ResourcesDep, settings: SettingsDep
) -> ReadinessResponse | JSONResponse:
    """The traffic probe: the database answers at the schema this code needs, and every model
    the app serves (the digits model, search's embedder) is loaded. The job queue is reported
    too (`jobs`), and never fails it: the API serves without a worker, its jobs wait."""
    deadline = time.monotonic() + settings.HEALTH_CHECK_TIMEOUT  # for both reads together
    revisions, problem = await query_database(db, REVISIONS, settings.HEALTH_CHECK_TIMEOUT)
    errors = dict(models.errors)
    if (embedder := resources.embedder) is None:
        errors["embedder"] = "the embedding model is not loaded: search answers 503"
    if problem is not None:
        errors["database"] = problem
    elif (behind := resources.schema.problem(revisions)) is not None:
        errors["schema"] = behind  # alembic upgrade head has not run (yet) on this database
    loaded = {name: f"{m.version} sha256:{m.sha256[:12]}" for name, m in models.models.items()}
    body = ReadinessResponse(
        status="ok" if models.ready and not errors else "error",
        database="ok" if problem is None else "unreachable",
        schema_revision=", ".join(sorted(revisions)) or None,
        models={**loaded, **({embedder.name: embedder.version} if embedder else {})},
        errors=errors,
        jobs=None if errors.keys() & {"database", "schema"} else await jobs_health(db, settings, deadline),
        warnings=dict(models.warnings),  # a failed alias switch: the old version still serves
    )
    if body.status != "ok":
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return body


# --8<-- [end:ready]


# --8<-- [start:jobs_health]
async def jobs_health(db: SessionDep, settings: Settings, deadline: float) -> JobsHealth:
    """Is any worker alive (a heartbeat within JOB_STALLED_SECONDS), and how long has the oldest
    job due to run waited? Read within what is left of the probe's time."""
    stalled = settings.JOB_STALLED_SECONDS
    left = deadline - time.monotonic()
    queue, problem = (
        await probe_database(db, lambda session: read_queue_health(session, stalled, counts=False), left)
        if left > 0
        else (None, "no time left within HEALTH_CHECK_TIMEOUT")
    )
    if queue is None:
        return JobsHealth(
            status="unknown",
            workers_alive=None,
            heartbeat_age_seconds=None,
            oldest_todo_age_seconds=None,
            detail=problem,
        )
    detail = None
    if not queue.workers_alive:
        last = queue.heartbeat_seconds
        heard = (
            "no worker has registered" if last is None else f"the last worker heartbeat is {last:.0f} s old"
        )
        detail = f"{heard} (JOB_STALLED_SECONDS is {stalled:g}): jobs wait until a worker runs"
    return JobsHealth(
        status="ok" if queue.workers_alive else "no_worker",
        workers_alive=queue.workers_alive,
        heartbeat_age_seconds=queue.heartbeat_seconds,
        oldest_todo_age_seconds=queue.oldest_todo_seconds,
        detail=detail,
    )


# --8<-- [end:jobs_health]
