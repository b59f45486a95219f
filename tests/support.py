"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic.config import Config
from httpx import Response
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


SECRET_MARKERS = re.compile(r"hashed_password|\$argon2|\$2[aby]\$")


def assert_no_secrets(text: str) -> None:
    """No password hash (nor the column's name) in what the server sent out."""
    found = SECRET_MARKERS.search(text)
    assert found is None, f"secret leaked to a client: {found.group(0)!r} in {text[:200]!r}"


async def check_response_for_secrets(response: Response) -> None:
    """httpx response hook used by every test client of the suite."""
    await response.aread()
    assert_no_secrets(response.text)


# Every test client of the suite fails a request whose response carries a hash (D03).
NO_SECRETS: dict[str, list[Any]] = {"response": [check_response_for_secrets]}
