"""/api/v1/models/{model_name}/shadow-report: the candidate's shadow answers against production's."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from example_app.api.dependencies import ModelsDep, SessionDep, require_active_user
from example_app.api.errors import responses
from example_app.schemas.shadow import ShadowReport
from example_app.services.errors import NotFoundError
from example_app.services.shadow_report import DEFAULT_ROWS, MAX_ROWS, ShadowReportService

# Who may read it: whoever may read the prediction log it is computed from (any active user), as
# the drift report; it shows counts and latencies, no inputs.
router = APIRouter(tags=["predictions"], dependencies=[Depends(require_active_user)])

ModelName = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


async def get_served_name(model_name: ModelName, models: ModelsDep) -> str:
    """A model this app serves (loaded or not: the report reads the log, not the model); else 404."""
    if model_name not in models.names:
        raise NotFoundError("model", model_name)
    return model_name


async def get_shadow_report_service(db: SessionDep) -> ShadowReportService:
    return ShadowReportService(db)


# --8<-- [start:route]
@router.get(
    "/models/{model_name}/shadow-report",
    response_model=ShadowReport,
    responses=responses(401, 403, 404, 422, 503),
)
async def shadow_report(
    model_name: Annotated[str, Depends(get_served_name)],
    service: Annotated[ShadowReportService, Depends(get_shadow_report_service)],
    last: Annotated[
        int, Query(ge=1, le=MAX_ROWS, description="The window: the newest this many shadowed production rows")
    ] = DEFAULT_ROWS,
    since: Annotated[
        AwareDatetime | None, Query(description="... logged at or after this instant (with its UTC offset)")
    ] = None,
    until: Annotated[AwareDatetime | None, Query(description="... and before this one")] = None,
) -> ShadowReport:
    """Per pair of versions (production, candidate): the rows compared, how often both gave the
    same label, and the p50/p95 latency of each, over the production rows with a shadow row."""
    if since is not None and until is not None and until <= since:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "until"),
                    "msg": "Value error, until must be later than since",
                    "input": until.isoformat(),
                }
            ]
        )
    return await service.report(model_name, last=last, since=since, until=until)


# --8<-- [end:route]
