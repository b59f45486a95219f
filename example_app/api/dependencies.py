"""Dependencies shared by the routes. `get_db` exists here and nowhere else."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.database import SessionLocal


# --8<-- [start:get_db]
async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session  # closed (and its connection returned) after the response


SessionDep = Annotated[AsyncSession, Depends(get_db)]
# --8<-- [end:get_db]
