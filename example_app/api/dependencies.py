"""Dependencies shared by the routes. `get_db` exists here and nowhere else."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.database import SessionLocal
from example_app.services.post import PostService
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
