"""/api/v1/posts."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import StringConstraints
from sqlalchemy.engine import Row

from example_app.api.dependencies import CurrentUser, PostServiceDep, SearchServiceDep, require_active_user
from example_app.api.errors import responses
from example_app.api.params import Limit, PostId, Skip
from example_app.core.config import API_V1_PREFIX
from example_app.models import Post
from example_app.schemas.common import Storable, Visible
from example_app.schemas.post import PostCreate, PostResponse, PostUpdate, PostWithAuthor
from example_app.schemas.search import PostSearchHit

router = APIRouter(prefix="/posts", tags=["posts"])


@router.get("", response_model=list[PostResponse], responses=responses(422, 503))
async def list_posts(service: PostServiceDep, skip: Skip = 0, limit: Limit = 20) -> Sequence[Row[Any]]:
    return await service.list_posts(skip=skip, limit=limit)


SearchQuery = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Storable,
    Visible,
    Query(description="What to look for, in words: posts are found by meaning, not by spelling"),
]
SearchLimit = Annotated[int, Query(ge=1, le=50, description="Hits (at most 50)")]


@router.get(
    "/search",  # never taken for an id: {post_id:id} (api/params.py) is no lowercase word
    response_model=list[PostSearchHit],
    dependencies=[Depends(require_active_user)],
    responses=responses(401, 403, 422, 503),
)
async def search_posts(
    q: SearchQuery, service: SearchServiceDep, limit: SearchLimit = 10
) -> list[PostSearchHit]:
    hits = await service.search(q, limit)
    return [
        PostSearchHit(**PostResponse.model_validate(post).model_dump(), distance=distance)
        for post, distance in hits
    ]


# A write that queues "embed post N" says where to follow that job (GET it, or its /events).
EMBEDDING_JOB: dict[str, Any] = {
    "headers": {"Embedding-Job": {"description": "The queued embedding job: /api/v1/jobs/{id}"}}
}


def link_embedding_job(response: Response, service: PostServiceDep) -> None:
    if service.embedding_job is not None:
        response.headers["Embedding-Job"] = f"{API_V1_PREFIX}/jobs/{service.embedding_job}"


@router.get("/{post_id:id}", response_model=PostWithAuthor, responses=responses(404, 422, 503))
async def get_post(post_id: PostId, service: PostServiceDep) -> PostWithAuthor:
    return await service.get_with_author(post_id)


@router.post(
    "",
    response_model=PostResponse,
    status_code=status.HTTP_201_CREATED,
    responses={201: EMBEDDING_JOB, **responses(400, 401, 403, 413, 422, 503)},
)
async def create_post(
    post_in: PostCreate, me: CurrentUser, service: PostServiceDep, response: Response
) -> Post:
    post = await service.create(me, post_in)  # the author is the caller
    link_embedding_job(response, service)
    return post


@router.patch(
    "/{post_id:id}",
    response_model=PostResponse,
    responses={200: EMBEDDING_JOB, **responses(400, 401, 403, 404, 413, 422, 503)},
)
async def update_post(
    post_id: PostId, post_in: PostUpdate, me: CurrentUser, service: PostServiceDep, response: Response
) -> Post:
    post = await service.update(me, post_id, post_in)  # not the author -> 403
    link_embedding_job(response, service)
    return post


@router.delete(
    "/{post_id:id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 422, 503)
)
async def delete_post(post_id: PostId, me: CurrentUser, service: PostServiceDep) -> None:
    await service.delete(me, post_id)
