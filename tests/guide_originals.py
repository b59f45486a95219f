"""The original guide's patterns, kept *only* to prove in tests why this project corrects them.

Nothing here is imported by example_app/. The docs show these blocks in "The original" tabs
next to the corrected code; the tests in test_blocking.py and test_secrets.py run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Engine, text
from sqlmodel import Session, create_engine, select

from example_app.models import User


def original_app(sync_url: str) -> tuple[FastAPI, Engine]:
    """An app wired the way the original guide wires it (sync Session under async routes)."""
    engine = create_engine(sync_url, echo=False, pool_pre_ping=True)

    # --8<-- [start:original_get_db]
    def get_db() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    # --8<-- [end:original_get_db]

    router = APIRouter()

    # --8<-- [start:original_blocking_route]
    @router.get("/slow")
    async def slow(db: Session = Depends(get_db)) -> dict[str, str]:
        # "Even with sync SQLModel, use async def for routes": this call blocks the event loop
        db.exec(text("SELECT pg_sleep(0.4)"))  # type: ignore[call-overload]
        return {"status": "done"}

    # --8<-- [end:original_blocking_route]

    # --8<-- [start:original_leaky_route]
    @router.get("/users")
    async def get_users(db: Session = Depends(get_db)) -> Any:
        return db.exec(select(User)).all()  # no response_model: every column goes out

    # --8<-- [end:original_leaky_route]

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "pong"}

    app = FastAPI()
    app.include_router(router)
    return app, engine
