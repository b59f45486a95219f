"""The app's background tasks: embed a post (ML11), and put back the jobs of dead workers."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from procrastinate import App, JobContext, RetryStrategy
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings
from example_app.jobs.queue import queue
from example_app.ml.embedding import post_text, shared_embedder
from example_app.models import Post

log = logging.getLogger(__name__)


# --8<-- [start:worker_resources]
@dataclass(frozen=True)
class WorkerResources:
    """What a worker process opened (jobs/worker.py), handed to each job through its context."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @staticmethod
    def of(context: JobContext) -> WorkerResources:
        resources: WorkerResources = context.additional_context["resources"]
        return resources


# --8<-- [end:worker_resources]


# --8<-- [start:embed_post]
@queue.task(name="embed_post", retry=RetryStrategy(max_attempts=5, exponential_wait=2), pass_context=True)
async def embed_post(context: JobContext, post_id: int) -> None:
    """Compute the post's embedding from its current text and store it with the row."""
    async with WorkerResources.of(context).sessions() as session:
        found = (await session.exec(select(Post.title, Post.body).where(Post.id == post_id))).first()
        if found is None:
            return  # deleted since it was queued: nothing to do
        vector = await asyncio.to_thread(lambda: shared_embedder().embed([post_text(*found)])[0])
        # updated_at stays: a computed column is not an edit (the ORM would bump it otherwise)
        await session.exec(
            update(Post).where(col(Post.id) == post_id).values(embedding=vector, updated_at=Post.updated_at)
        )
        await session.commit()


async def defer_embedding(session: AsyncSession, post_id: int) -> int:
    """Queue "embed post N" in the session's transaction; the job's id.

    The job row is written on the session's own connection: it exists once the caller commits,
    and never if the caller rolls back. The lock runs the jobs of one post one at a time, in
    the order they were queued, so the last edit's embedding is the one that stays.
    """
    job_id = await embed_post.configure(connection=session, lock=f"post:{post_id}").defer_async(
        post_id=post_id
    )
    return job_id


# --8<-- [end:embed_post]


# --8<-- [start:recover]
async def recover_stalled_jobs(app: App, seconds_since_heartbeat: float) -> list[int]:
    """Put the jobs of dead workers (no heartbeat for that long) back in the queue; their ids.

    A worker killed mid-job (OOM, SIGKILL, a lost machine) leaves its job in `doing`, and the
    job's lock held. procrastinate finds such jobs by the workers' heartbeats.
    """
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        log.warning("job %s (%s) was running on a dead worker: queued again", job.id, job.task_name)
        await app.job_manager.retry_job(job)
    return [job.id for job in stalled if job.id is not None]


@queue.periodic(cron="* * * * *")  # every minute, deferred once whatever the number of workers
@queue.task(name="recover_stalled_jobs", queueing_lock="recover_stalled_jobs", pass_context=True)
async def recover_stalled_jobs_task(context: JobContext, timestamp: int) -> None:
    await recover_stalled_jobs(context.app, WorkerResources.of(context).settings.JOB_STALLED_SECONDS)


# A job's row (its status, for GET /jobs/{id}) outlives the job by a day; failed ones stay.
@queue.periodic(cron="17 * * * *")  # hourly
@queue.task(name="remove_old_jobs", queueing_lock="remove_old_jobs", pass_context=True)
async def remove_old_jobs(context: JobContext, timestamp: int) -> None:
    await context.app.job_manager.delete_old_jobs(nb_hours=24)


# --8<-- [end:recover]
