"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import Result, text
from sqlmodel.ext.asyncio.session import AsyncSession

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    """The project's alembic.ini, pointed at `database_url`, without touching logging."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logger"] = False
    return cfg


def path(name: str, **params: object) -> str:
    """Paths come from the app's routes, never typed by hand (see E11)."""
    from example_app.main import app  # imported late: settings exist once the server is up

    return app.url_path_for(name, **params)


async def sql(session: AsyncSession, statement: str, **params: object) -> Result[Any]:
    """Raw SQL on the test's own connection (and transaction): what PostgreSQL really holds."""
    connection = await session.connection()
    return await connection.execute(text(statement), params)
