"""Dependencies shared by the routes. `get_db` exists here and nowhere else.

Each reads what it hands out from the app that serves the request (`request.app.state`: its
settings, and the resources its lifespan opened), never from a module global.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core import request_id
from example_app.core.config import API_V1_PREFIX, Settings
from example_app.core.rate_limit import LoginLimiter
from example_app.core.security import user_id_from_token
from example_app.ml.artifact import LoadedModel
from example_app.ml.embedding import TextEmbedder
from example_app.ml.inference import Inference
from example_app.models import User
from example_app.resources import Resources
from example_app.services.canary import in_canary
from example_app.services.errors import NotFoundError, UnavailableError
from example_app.services.job import JobService
from example_app.services.model_registry import DIGITS, ModelRegistry
from example_app.services.post import PostService
from example_app.services.prediction import PredictionService
from example_app.services.search import SearchService
from example_app.services.shadow import Shadow
from example_app.services.user import UserService


# --8<-- [start:app_state]
def app_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources  # opened by the app's lifespan
    return resources


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # what create_app was given
    return settings


# For routes. Providers call the two functions above instead: FastAPI walks a dependency's tree
# again wherever it is asked for (the value is cached, the walk is not), so a provider that
# others ask for keeps its tree small.
async def get_resources(request: Request) -> Resources:
    return app_resources(request)


async def get_app_settings(request: Request) -> Settings:
    return app_settings(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
# --8<-- [end:app_state]


# --8<-- [start:get_db]
READS = frozenset({"GET", "HEAD"})


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    # A GET only reads, and a read needs no transaction: under READ COMMITTED, PostgreSQL's
    # default, each statement sees a snapshot of its own inside one as well. Without it there
    # is no BEGIN and no ROLLBACK: a read by primary key is one round trip. Writes get one.
    resources = app_resources(request)
    options = resources.read_options if request.method in READS else {}
    async with resources.sessions(execution_options=options) as session:
        yield session  # closed (and its connection returned) after the response


SessionDep = Annotated[AsyncSession, Depends(get_db)]
# --8<-- [end:get_db]


# --8<-- [start:service_providers]
# async def, though nothing here awaits: FastAPI runs a plain `def` dependency in its threadpool,
# a hop to another thread and back on every request, for a constructor call.
async def get_user_service(request: Request, db: SessionDep) -> UserService:
    return UserService(db, app_resources(request).passwords)


async def get_post_service(db: SessionDep) -> PostService:
    return PostService(db)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
PostServiceDep = Annotated[PostService, Depends(get_post_service)]
# --8<-- [end:service_providers]


# --8<-- [start:current_user]
# Declares the scheme in OpenAPI (Swagger UI's Authorize button logs in at tokenUrl) and reads
# `Authorization: Bearer <token>`; without that header it answers 401 itself.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=f"{API_V1_PREFIX}/auth/token")


async def get_current_user(
    request: Request, token: Annotated[str, Depends(oauth2_scheme)], service: UserServiceDep
) -> User:
    user_id = user_id_from_token(app_settings(request), token)  # the app's own SECRET_KEY
    if user_id is not None:
        try:
            return await service.get(user_id)
        except NotFoundError:  # a valid token whose account was deleted since
            pass
    # The same answer for a forged, expired or orphaned token: none of them says more.
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED, "Invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
    )


async def require_active_user(user: Annotated[User, Depends(get_current_user)]) -> User:
    """Every route that needs a caller: a router can take it whole, `dependencies=[...]`."""
    if not user.is_active:  # the token is valid, the account may not act: 403, not 401
        raise HTTPException(status.HTTP_403_FORBIDDEN, "This account is inactive")
    return user


CurrentUser = Annotated[User, Depends(require_active_user)]
# --8<-- [end:current_user]


# --8<-- [start:login_limiter]
async def get_login_limiter(request: Request) -> LoginLimiter:
    """One per app, made from its settings; tests override it like get_db."""
    return app_resources(request).login_limiter


LoginLimiterDep = Annotated[LoginLimiter, Depends(get_login_limiter)]
# --8<-- [end:login_limiter]


# --8<-- [start:model_providers]
# Loaded once by the lifespan and held with the app's resources; tests override these like get_db.
async def get_models(request: Request) -> ModelRegistry:
    return app_resources(request).models


async def get_inference(request: Request) -> Inference:
    return app_resources(request).inference


ModelsDep = Annotated[ModelRegistry, Depends(get_models)]


async def get_requested_version(
    version: Annotated[
        str | None,
        Query(
            pattern=r"^\d+\.\d+\.\d+$",
            description="a registered version of the model; default: the one its alias (production) serves",
            examples=["1.0.0"],
        ),
    ] = None,
) -> str | None:
    return version


RequestedVersion = Annotated[str | None, Depends(get_requested_version)]


async def get_digits_model(
    request: Request, models: ModelsDep, user: CurrentUser, version: RequestedVersion
) -> LoadedModel:
    """The version a request gets, kept to its end: an alias switch never changes it mid-request.
    A request naming no version from a caller in the canary's share gets the candidate.
    Not loaded (readiness says why): 503; an unregistered version: 404."""
    percent = app_settings(request).MODEL_CANARY_PERCENT
    if version is None and percent > 0 and (candidate := models.candidate(DIGITS)):
        assert user.id is not None
        if in_canary(user.id, candidate, percent):
            return candidate
    return await models.resolve(DIGITS, version)


async def get_prediction_service(
    request: Request, db: SessionDep, inference: Annotated[Inference, Depends(get_inference)]
) -> PredictionService:
    return PredictionService(db, inference, request_id.current.get(), app_resources(request).batcher)


DigitsModelDep = Annotated[LoadedModel, Depends(get_digits_model)]
PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
# --8<-- [end:model_providers]


# --8<-- [start:shadow_provider]
async def get_shadow(request: Request, version: RequestedVersion) -> Shadow | None:
    """Whether the candidate shadows this request: production traffic only (no version named; a
    canary caller's, answered by the candidate, `Shadow.after` skips), MODEL_SHADOW_PERCENT of it.
    Not given the model as a dependency: FastAPI walks a dependency's tree again at each use (the
    value is cached, the walk is not), and the model's tree holds the caller's."""
    resources = app_resources(request)
    candidate = resources.models.candidate(DIGITS)
    if (
        candidate is None
        or version is not None
        or not resources.shadow.sampled(app_settings(request).MODEL_SHADOW_PERCENT)
    ):
        return None
    return Shadow(resources.shadow, candidate, request_id.current.get())


ShadowDep = Annotated[Shadow | None, Depends(get_shadow)]
# --8<-- [end:shadow_provider]


# --8<-- [start:search_providers]
async def get_embedder(request: Request) -> TextEmbedder:
    embedder = app_resources(request).embedder  # loaded once by the lifespan
    if embedder is None:  # it failed to load (logged at start-up): search answers 503
        raise UnavailableError("the embedding model is not loaded")
    return embedder


async def get_search_service(
    request: Request, db: SessionDep, embedder: Annotated[TextEmbedder, Depends(get_embedder)]
) -> SearchService:
    return SearchService(db, embedder, app_settings(request).SEARCH_EF_SEARCH)


SearchServiceDep = Annotated[SearchService, Depends(get_search_service)]
# --8<-- [end:search_providers]


# --8<-- [start:job_providers]
async def get_job_service(db: SessionDep) -> JobService:
    return JobService(db)


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For a stream that reads now and then: a short session per read, not one held throughout."""
    return app_resources(request).sessions


JobServiceDep = Annotated[JobService, Depends(get_job_service)]
SessionMakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
# --8<-- [end:job_providers]
