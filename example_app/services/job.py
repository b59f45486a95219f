"""Reading background jobs: procrastinate's own tables, through the app's session.

The queue's tables are procrastinate's (created from its schema by a revision), so they are
not models: two lightweight table clauses name the columns read here, and nothing else.
"""

import asyncio
from collections.abc import AsyncIterator

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, column, select, table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.schemas.job import FINAL_STATUSES, JobEvent, JobResponse
from example_app.services.errors import NotFoundError

JOBS = table(
    "procrastinate_jobs",
    column("id", BigInteger),
    column("task_name", String),
    column("args", JSONB),
    column("status", String),
    column("attempts", Integer),
    column("scheduled_at", DateTime(timezone=True)),
)
EVENTS = table(
    "procrastinate_events",
    column("id", BigInteger),
    column("job_id", BigInteger),
    column("type", String),  # an enum type of procrastinate's: compared as text
    column("at", DateTime(timezone=True)),
)

# --8<-- [start:event_status]
# The events that change a job's status (procrastinate's triggers write one per change), and
# the status each leaves the job in. "scheduled" and "abort_requested" change no status.
STATUS_AFTER = {
    "deferred": "todo",
    "started": "doing",
    "deferred_for_retry": "todo",  # failed, and a retry is queued (after its backoff)
    "retried": "todo",  # a failed job queued again by hand
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "aborted": "aborted",
}
# --8<-- [end:event_status]


class JobService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def get(self, job_id: int) -> JobResponse:
        statement = select(JOBS).where(JOBS.c.id == job_id)
        row = (await (await self.db.connection()).execute(statement)).mappings().first()
        if row is None:
            raise NotFoundError("Job", job_id)
        return JobResponse.model_validate({**row, "task": row["task_name"]})

    async def status_changes(self, job_id: int, *, after: int = 0) -> list[JobEvent]:
        """The job's status changes with an event id above `after`, oldest first."""
        statement = (
            select(EVENTS)
            .where(EVENTS.c.job_id == job_id, EVENTS.c.id > after, EVENTS.c.type.cast(Text).in_(STATUS_AFTER))
            .order_by(EVENTS.c.id)
        )
        rows = (await (await self.db.connection()).execute(statement)).mappings().all()
        return [JobEvent.model_validate({**row, "status": STATUS_AFTER[row["type"]]}) for row in rows]


# --8<-- [start:watch]
async def watch_job(
    sessions: async_sessionmaker[AsyncSession], job_id: int, *, after: int = 0, interval: float
) -> AsyncIterator[JobEvent]:
    """Each status change of the job as it happens, until a final one (or the job is gone).

    Every look is a short session of its own: a watcher holds no connection between looks,
    however long the job takes.
    """
    while True:
        async with sessions() as db:
            service = JobService(db)
            changes = await service.status_changes(job_id, after=after)
            if not changes:
                try:
                    job = await service.get(job_id)
                except NotFoundError:
                    return  # deleted meanwhile: nothing more will happen to it
                if job.status in FINAL_STATUSES:
                    return  # ended before `after` (a client reconnecting with Last-Event-ID)
        for change in changes:
            yield change
            after = change.id
            if change.status in FINAL_STATUSES:
                return
        if not changes:
            await asyncio.sleep(interval)


# --8<-- [end:watch]
