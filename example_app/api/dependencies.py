"""Dependencies shared by the routes. `get_db` exists here and nowhere else."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.database import SessionLocal
from example_app.ml.artifact import LoadedModel
from example_app.ml.inference import Inference
from example_app.ml.registry import DIGITS, ModelRegistry
from example_app.services.errors import UnavailableError
from example_app.services.post import PostService
from example_app.services.prediction import PredictionService
from example_app.services.user import UserService


# --8<-- [start:get_db]
async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session  # closed (and its connection returned) after the response


SessionDep = Annotated[AsyncSession, Depends(get_db)]
# --8<-- [end:get_db]


# --8<-- [start:service_providers]
def get_user_service(db: SessionDep) -> UserService:
    return UserService(db)


def get_post_service(db: SessionDep) -> PostService:
    return PostService(db)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
PostServiceDep = Annotated[PostService, Depends(get_post_service)]
# --8<-- [end:service_providers]


# --8<-- [start:model_providers]
# Loaded once by the lifespan and held on app state; tests override these like get_db.
def get_models(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.models
    return registry


def get_inference(request: Request) -> Inference:
    inference: Inference = request.app.state.inference
    return inference


ModelsDep = Annotated[ModelRegistry, Depends(get_models)]


def get_digits_model(models: ModelsDep) -> LoadedModel:
    model = models.models.get(DIGITS)
    if model is None:  # the artifact failed to load: readiness says why, routes answer 503
        raise UnavailableError(f"model {DIGITS!r} is not loaded")
    return model


def get_prediction_service(
    db: SessionDep, inference: Annotated[Inference, Depends(get_inference)]
) -> PredictionService:
    return PredictionService(db, inference)


DigitsModelDep = Annotated[LoadedModel, Depends(get_digits_model)]
PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
# --8<-- [end:model_providers]
