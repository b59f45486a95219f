"""The shadow report (LC03): SQL over the prediction log, each shadow row beside the production
row it shadows.

PostgreSQL does the comparing and the percentiles, so what crosses the wire is one row per pair
of versions, whatever the window's size. The window is the newest `last` production rows that
have a shadow twin (bounded by MAX_ROWS), optionally within [since, until); the partial index on
`shadow_of` serves it newest first.
"""

from datetime import datetime

from sqlalchemy import DateTime, bindparam, text
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.schemas.shadow import LatencySummary, ShadowReport, VersionPair

MAX_ROWS = 100_000
DEFAULT_ROWS = 1_000

# --8<-- [start:report_sql]
REPORT = text("""
WITH pairs AS (
    SELECT production.model_version AS production_version,
           shadow.model_version AS candidate_version,
           (production.output -> 'label') = (shadow.output -> 'label') AS agree,
           production.latency_ms AS production_ms,
           shadow.latency_ms AS candidate_ms
    FROM predictions AS shadow
    JOIN predictions AS production ON production.id = shadow.shadow_of
    WHERE shadow.shadow_of IS NOT NULL
      AND production.model_name = :name
      AND (CAST(:since AS timestamptz) IS NULL OR production.created_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR production.created_at < :until)
    ORDER BY shadow.shadow_of DESC
    LIMIT :last
)
SELECT production_version, candidate_version,
       count(*) AS rows,
       count(*) FILTER (WHERE agree) AS agreeing,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY production_ms) AS production_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY production_ms) AS production_p95,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY candidate_ms) AS candidate_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY candidate_ms) AS candidate_p95
FROM pairs
GROUP BY production_version, candidate_version
ORDER BY production_version, candidate_version
""").bindparams(
    bindparam("since", type_=DateTime(timezone=True)),
    bindparam("until", type_=DateTime(timezone=True)),
)
# --8<-- [end:report_sql]


class ShadowReportService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def report(
        self, model_name: str, *, last: int, since: datetime | None = None, until: datetime | None = None
    ) -> ShadowReport:
        params = {"name": model_name, "last": last, "since": since, "until": until}
        rows = (await self.db.exec(REPORT, params=params)).all()  # type: ignore[call-overload]
        pairs = [
            VersionPair(
                production_version=row.production_version,
                candidate_version=row.candidate_version,
                rows=row.rows,
                agreeing=row.agreeing,
                agreement=row.agreeing / row.rows,
                production_latency=LatencySummary(p50_ms=row.production_p50, p95_ms=row.production_p95),
                candidate_latency=LatencySummary(p50_ms=row.candidate_p50, p95_ms=row.candidate_p95),
            )
            for row in rows
        ]
        return ShadowReport(
            model_name=model_name,
            last=last,
            since=since,
            until=until,
            rows=sum(pair.rows for pair in pairs),
            pairs=pairs,
        )
