"""/api/v1/models/{model_name}/drift: a served model's recent inputs and answers against its training data."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime

from example_app.api.dependencies import ModelsDep, SessionDep, require_active_user
from example_app.api.errors import responses
from example_app.ml.artifact import LoadedModel
from example_app.ml.drift import DRIFT
from example_app.schemas.drift import DriftReport
from example_app.services.drift import DEFAULT_ROWS, MAX_ROWS, MIN_ROWS, DriftService
from example_app.services.errors import NotFoundError, UnavailableError

# Who may read it: whoever may read the prediction log it is computed from (any active user); it
# shows less than the log does, counts and no inputs.
router = APIRouter(tags=["predictions"], dependencies=[Depends(require_active_user)])

ModelName = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


async def get_named_model(model_name: ModelName, models: ModelsDep) -> LoadedModel:
    model = models.models.get(model_name)
    if model is not None:
        return model
    if model_name in models.errors:  # known, but its artifact failed to load: readiness says why
        raise UnavailableError(f"model {model_name!r} is not loaded")
    raise NotFoundError("model", model_name)


async def get_drift_service(db: SessionDep) -> DriftService:
    return DriftService(db)


# --8<-- [start:route]
@router.get(
    "/models/{model_name}/drift", response_model=DriftReport, responses=responses(401, 403, 404, 422, 503)
)
async def drift_report(
    model: Annotated[LoadedModel, Depends(get_named_model)],
    service: Annotated[DriftService, Depends(get_drift_service)],
    last: Annotated[
        int, Query(ge=MIN_ROWS, le=MAX_ROWS, description="The window: the newest this many logged rows")
    ] = DEFAULT_ROWS,
    since: Annotated[
        AwareDatetime | None, Query(description="... logged at or after this instant (with its UTC offset)")
    ] = None,
    threshold: Annotated[
        float, Query(gt=0, le=10, description="PSI at or past which a feature or the labels are flagged")
    ] = DRIFT,
) -> DriftReport:
    """PSI of each feature and of the predicted labels: the served version's logged rows in the
    window against the profile of its training data. 0.1 is worth watching; 0.25 (the default
    threshold) is the usual line for drift. Fewer than the minimum rows: no verdict."""
    return await service.report(model, last=last, since=since, threshold=threshold)


# --8<-- [end:route]
