"""API schemas for background jobs: a job's state, and the events of its life."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

# procrastinate's job states; the last four are final.
JobStatus = Literal["todo", "doing", "succeeded", "failed", "cancelled", "aborted"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "aborted"})


class JobResponse(BaseModel):
    id: int
    task: str
    args: dict[str, Any]
    status: JobStatus
    attempts: int  # runs that ended so far (a failed run is retried until the task's limit)
    scheduled_at: datetime | None  # when a retry may start (backoff), if later than queued


class JobEvent(BaseModel):
    """One status change: what `GET /jobs/{id}/events` sends, one server-sent event each."""

    id: int  # the event's id: the SSE `id:`, sent back as Last-Event-ID on reconnection
    job_id: int
    type: str  # procrastinate's event: deferred, started, deferred_for_retry, succeeded, ...
    status: JobStatus  # the job's status after it
    at: datetime
