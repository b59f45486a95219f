"""What the health checks answer."""

from typing import Literal

from pydantic import BaseModel


class LivenessResponse(BaseModel):
    status: Literal["ok"]  # the only answer: a process that cannot give it gives none


class HealthResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    detail: str | None = None


# --8<-- [start:jobs_health]
class JobsHealth(BaseModel):
    """The job queue, as readiness reports it: said, never a reason to fail (Observability)."""

    status: Literal["ok", "no_worker", "unknown"]  # no_worker: no heartbeat within JOB_STALLED_SECONDS
    workers_alive: int | None
    heartbeat_age_seconds: float | None  # the freshest worker heartbeat's age; None: no worker
    oldest_todo_age_seconds: float | None  # the longest wait of a job due to run; None: none waits
    detail: str | None = None


# --8<-- [end:jobs_health]


class ReadinessResponse(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    schema_revision: str | None  # the database's Alembic revision (None: not migrated, or no answer)
    models: dict[str, str]  # name -> version (and sha256 for an artifact) of each loaded model
    errors: dict[str, str]  # what keeps the app from being ready, one line each
    jobs: JobsHealth | None = None  # the job queue (None: the database or its schema is not ready)
    # What failed and did not stop serving (a model alias moved to a version that does not load:
    # the previous version still answers), one line each.
    warnings: dict[str, str] = {}
