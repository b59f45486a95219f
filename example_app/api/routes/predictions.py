"""/api/v1/predictions and /api/v1/models: the served model, and what is loaded."""

from typing import Any

from fastapi import APIRouter

from example_app.api.dependencies import DigitsModelDep, ModelsDep, PredictionServiceDep
from example_app.schemas.prediction import (
    BatchInput,
    BatchResponse,
    ModelInfo,
    PredictionInput,
    PredictionResponse,
)

router = APIRouter(tags=["predictions"])

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "The request body is over the size limit"},
    503: {"description": "The model is not loaded, or no prediction within the timeout"},
}


@router.post("/predictions", response_model=PredictionResponse, responses=ERRORS)
async def predict(
    body: PredictionInput, model: DigitsModelDep, service: PredictionServiceDep
) -> PredictionResponse:
    ref, latency_ms, (result,) = await service.predict(model, [body.pixels])
    return PredictionResponse(**result.model_dump(), model=ref, latency_ms=latency_ms)


@router.post("/predictions/batch", response_model=BatchResponse, responses=ERRORS)
async def predict_batch(
    body: BatchInput, model: DigitsModelDep, service: PredictionServiceDep
) -> BatchResponse:
    ref, latency_ms, results = await service.predict(model, [row.pixels for row in body.rows])
    return BatchResponse(model=ref, latency_ms=latency_ms, predictions=results)


@router.get("/models", response_model=list[ModelInfo])
async def list_models(models: ModelsDep) -> list[ModelInfo]:
    loaded = [
        ModelInfo(name=name, loaded=True, manifest=model.manifest.model_dump(mode="json"))
        for name, model in models.models.items()
    ]
    return loaded + [ModelInfo(name=name, loaded=False, error=error) for name, error in models.errors.items()]
