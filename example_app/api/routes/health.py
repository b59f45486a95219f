"""The probes: liveness (the process answers), readiness (it can serve), and /health, the
database's reachability alone, which the benches and monitors of earlier releases call."""

import asyncio

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import TextClause, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.api.dependencies import ModelsDep, ResourcesDep, SessionDep, SettingsDep
from example_app.schemas.health import HealthResponse, LivenessResponse, ReadinessResponse

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
    # Bounded: a dead or black-holed database answers 503 quickly instead of hanging. The probe
    # runs in a session of its own, on the same database, so that an overrun can be left behind:
    # cancelling it means closing a connection that gets no answer, which takes seconds more.
    probe = asyncio.ensure_future(_query(db, query))
    done, _ = await asyncio.wait({probe}, timeout=seconds)
    if not done:
        probe.cancel()
        _overrun.add(probe)  # held until it has finished cleaning up
        probe.add_done_callback(_overrun.discard)
        return set(), f"no answer within {seconds:g} s"
    if (exc := probe.exception()) is not None:  # any failure to reach the database: unavailable
        return set(), f"cannot query the database ({type(exc).__name__})"
    return probe.result(), None


_overrun: set[asyncio.Future[set[str]]] = set()


async def _query(db: SessionDep, query: TextClause) -> set[str]:
    # Like the request's own session (get_db): a GET's has no transaction, so this is one round trip.
    async with AsyncSession(db.bind, execution_options=db.sync_session.execution_options) as session:
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
    the app serves (the digits model, search's embedder) is loaded."""
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
    )
    if body.status != "ok":
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return body


# --8<-- [end:ready]
