"""/api/v1/users: thin handlers; the rules live in UserService."""

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, status
from sqlalchemy.engine import Row

from example_app.api.dependencies import CurrentUser, PostServiceDep, UserServiceDep
from example_app.api.errors import responses
from example_app.api.params import Limit, Skip, UserId
from example_app.models import User
from example_app.schemas.post import PostResponse
from example_app.schemas.user import UserCreate, UserResponse, UserUpdate

# --8<-- [start:users_router]
# Paths have no trailing slash: the collection is /api/v1/users (prefixes stack).
router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=list[UserResponse], responses=responses(401, 403, 422, 503))
async def list_users(
    me: CurrentUser, service: UserServiceDep, skip: Skip = 0, limit: Limit = 20
) -> Sequence[User]:
    return await service.list_users(me, skip=skip, limit=limit)  # superusers only: else 403


@router.get("/{user_id}", response_model=UserResponse, responses=responses(401, 403, 404, 422, 503))
async def get_user(user_id: UserId, me: CurrentUser, service: UserServiceDep) -> User:
    return await service.get_for(me, user_id)  # NotFoundError -> 404 "User 7 not found"


@router.post(
    "",
    response_model=UserResponse,
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, 409, 413, 422, 503, conflict="A user with this email already exists"),
)
async def create_user(user_in: UserCreate, service: UserServiceDep) -> User:
    return await service.create(user_in)  # sign-up: no token needed; ConflictError -> 409


@router.patch(
    "/{user_id}", response_model=UserResponse, responses=responses(400, 401, 403, 404, 413, 422, 503)
)
async def update_user(user_id: UserId, user_in: UserUpdate, me: CurrentUser, service: UserServiceDep) -> User:
    return await service.update(me, user_id, user_in)


@router.delete(
    "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 422, 503)
)
async def delete_user(user_id: UserId, me: CurrentUser, service: UserServiceDep) -> None:
    await service.delete(me, user_id)


# --8<-- [end:users_router]


@router.get("/{user_id}/posts", response_model=list[PostResponse], responses=responses(422, 503))
async def list_user_posts(
    user_id: UserId, service: PostServiceDep, skip: Skip = 0, limit: Limit = 20
) -> Sequence[Row[Any]]:
    return await service.list_posts(skip=skip, limit=limit, author_id=user_id)
