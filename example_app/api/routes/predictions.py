"""/api/v1/predictions and /api/v1/models: the served model, its log, and what is loaded."""

from collections.abc import AsyncIterator

from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.responses import StreamingResponse

from example_app.api.contract import check_rows
from example_app.api.dependencies import (
    DigitsModelDep,
    ModelsDep,
    PredictionServiceDep,
    ShadowDep,
    require_active_user,
)
from example_app.api.errors import responses
from example_app.api.params import After, Limit
from example_app.schemas.prediction import (
    BatchInput,
    BatchResponse,
    ExportedPrediction,
    LoggedPrediction,
    ModelInfo,
    PredictionInput,
    PredictionPage,
    PredictionResponse,
)
from example_app.services.keyset import encode_cursor

# Every route here, and any added later, takes an active user's token (see the Security page).
router = APIRouter(tags=["predictions"], dependencies=[Depends(require_active_user)])

# --8<-- [start:serving_routes]
# Every route: 401/403 (the token), 503 (the database; the model, for predictions).
ERRORS = responses(400, 401, 403, 404, 413, 422, 503)  # 404: an unregistered version


# --8<-- [start:predict]
@router.post("/predictions", response_model=PredictionResponse, responses=ERRORS)
async def predict(
    body: PredictionInput,
    model: DigitsModelDep,
    service: PredictionServiceDep,
    shadow: ShadowDep,
    background: BackgroundTasks,
) -> PredictionResponse:
    check_rows(model, [body.pixels], lambda _: ("body", "pixels"))  # this version's contract
    ref, latency_ms, result = await service.predict_one(model, body.pixels)  # micro-batched (LC06)
    if shadow is not None:  # queued once the answer is sent (services/shadow.py)
        background.add_task(shadow.after, model, [body.pixels], [result.id])
    return PredictionResponse(**result.model_dump(), model=ref, latency_ms=latency_ms)


# --8<-- [end:predict]


@router.post("/predictions/batch", response_model=BatchResponse, responses=ERRORS)
async def predict_batch(
    body: BatchInput,
    model: DigitsModelDep,
    service: PredictionServiceDep,
    shadow: ShadowDep,
    background: BackgroundTasks,
) -> BatchResponse:
    rows = [row.pixels for row in body.rows]
    check_rows(model, rows, lambda i: ("body", "rows", i, "pixels"))
    ref, latency_ms, results = await service.predict(model, rows)
    if shadow is not None:
        background.add_task(shadow.after, model, rows, [result.id for result in results])
    return BatchResponse(model=ref, latency_ms=latency_ms, predictions=results)


@router.get("/models", response_model=list[ModelInfo], responses=responses(401, 403, 503))
async def list_models(models: ModelsDep) -> list[ModelInfo]:
    loaded = [
        ModelInfo(name=name, loaded=True, manifest=model.manifest.model_dump(mode="json"))
        for name, model in models.models.items()
    ]
    return loaded + [ModelInfo(name=name, loaded=False, error=error) for name, error in models.errors.items()]


# --8<-- [end:serving_routes]


# --8<-- [start:log_routes]
@router.get("/predictions", response_model=PredictionPage, responses=responses(401, 403, 422, 503))
async def list_predictions(service: PredictionServiceDep, after: After, limit: Limit = 20) -> PredictionPage:
    rows, last = await service.page(after=after, limit=limit)
    return PredictionPage(
        items=[LoggedPrediction.model_validate(row) for row in rows],
        next=encode_cursor(last) if last else None,
    )


@router.get(
    "/predictions/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object per line"},
        **responses(401, 403, 503),
    },
)
async def export_predictions(service: PredictionServiceDep) -> StreamingResponse:
    """The whole log as JSON Lines, streamed: the first line leaves before the last row is read."""

    async def lines() -> AsyncIterator[bytes]:
        async for row in service.export():
            yield ExportedPrediction.model_validate(row).model_dump_json().encode() + b"\n"

    # The session (a dependency with yield) stays open until the response is sent, so the cursor
    # lives as long as the stream; a client that disconnects cancels `lines` and frees both.
    return StreamingResponse(lines(), media_type="application/x-ndjson")


# --8<-- [end:log_routes]
