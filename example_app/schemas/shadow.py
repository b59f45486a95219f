"""The shadow report's answer (LC03): the candidate's answers against production's, per version pair."""

from datetime import datetime

from pydantic import BaseModel


class LatencySummary(BaseModel):
    p50_ms: float
    p95_ms: float


class VersionPair(BaseModel):
    production_version: str  # the version that answered the callers
    candidate_version: str  # the version that shadowed it
    rows: int  # production rows with a shadow row in the window
    agreeing: int  # of those, the rows where both gave the same label
    agreement: float  # agreeing / rows
    production_latency: LatencySummary  # latency_ms of the production rows (waiting for a thread included)
    candidate_latency: (
        LatencySummary  # latency_ms of the shadow rows (computing only: a shadow never waits in line)
    )


class ShadowReport(BaseModel):
    model_name: str
    last: int  # the window: at most this many shadowed production rows, newest first ...
    since: datetime | None  # ... logged at or after this instant, if given
    until: datetime | None  # ... and before this one, if given
    rows: int  # production rows compared, over every pair
    pairs: list[VersionPair]  # one per (production, candidate) version pair in the window
