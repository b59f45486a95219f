"""/api/v1/jobs: a background job's status, and its status changes as server-sent events."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.sse import EventSourceResponse, ServerSentEvent

from example_app.api.dependencies import (
    JobServiceDep,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    require_active_user,
)
from example_app.api.errors import responses
from example_app.schemas.job import JobResponse
from example_app.services.job import watch_job

# Any active user may read a job: its id, task, arguments and status, nothing of its output.
router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_active_user)])

JobId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # procrastinate's ids are bigint
ERRORS = responses(401, 403, 404, 422, 503, not_found="No such job")


@router.get("/{job_id}", response_model=JobResponse, responses=ERRORS)
async def get_job(job_id: JobId, service: JobServiceDep) -> JobResponse:
    return await service.get(job_id)


async def existing_job(job_id: JobId, service: JobServiceDep) -> JobResponse:
    return await service.get(job_id)  # a 404 before the stream starts, not inside it


# --8<-- [start:events]
@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=responses(401, 403, 404, 422, 503, stream=True, not_found="No such job"),
)
async def job_events(
    job: Annotated[JobResponse, Depends(existing_job)],
    db: SessionDep,
    sessions: SessionMakerDep,
    settings: SettingsDep,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """One event per status change (todo, doing, succeeded...) until the job ends.

    A client that reconnects sends the last `id:` it saw as `Last-Event-ID` and gets the rest.
    """
    # The request's session served the checks above; the stream may last minutes, and holds no
    # connection while it waits: each look at the job is a short session of its own.
    await db.close()
    interval = settings.JOB_EVENTS_POLL_SECONDS
    async for change in watch_job(sessions, job.id, after=last_event_id or 0, interval=interval):
        yield ServerSentEvent(data=change, event="status", id=str(change.id))


# --8<-- [end:events]
