"""/api/v1/posts."""

from collections.abc import Sequence

from fastapi import APIRouter, status

from example_app.api.dependencies import CurrentUser, PostServiceDep
from example_app.api.params import Limit, PostId, Skip
from example_app.models import Post
from example_app.schemas.post import PostCreate, PostResponse, PostUpdate, PostWithAuthor

router = APIRouter(prefix="/posts", tags=["posts"])


@router.get("", response_model=list[PostResponse])
async def list_posts(service: PostServiceDep, skip: Skip = 0, limit: Limit = 20) -> Sequence[Post]:
    return await service.list_posts(skip=skip, limit=limit)


@router.get("/{post_id}", response_model=PostWithAuthor)
async def get_post(post_id: PostId, service: PostServiceDep) -> Post:
    return await service.get_with_author(post_id)


@router.post("", response_model=PostResponse, status_code=status.HTTP_201_CREATED)
async def create_post(post_in: PostCreate, me: CurrentUser, service: PostServiceDep) -> Post:
    return await service.create(me, post_in)  # the author is the caller


@router.patch("/{post_id}", response_model=PostResponse)
async def update_post(post_id: PostId, post_in: PostUpdate, me: CurrentUser, service: PostServiceDep) -> Post:
    return await service.update(me, post_id, post_in)  # not the author -> 403


@router.delete("/{post_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_post(post_id: PostId, me: CurrentUser, service: PostServiceDep) -> None:
    await service.delete(me, post_id)
