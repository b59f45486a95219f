"""What `tasks.py train`, `model-register` and `model-alias` do to the registry, in one line each.

Each returns the line to print, or raises CommandError with the one line that says what is wrong
(an unknown version, an unreachable or unmigrated database), never a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import Settings
from example_app.core.database import create_engine, create_sessionmaker
from example_app.ml.artifact import ModelLoadError, load_model
from example_app.services.errors import ServiceError
from example_app.services.model_version import register_version, set_alias, stored_path

UNDEFINED_TABLE = "42P01"


class CommandError(Exception):
    """One line for the terminal; `unreachable`: no database to write to (try again later)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


# --8<-- [start:commands]
async def register_folder(settings: Settings, folder: Path) -> str:
    """Register the artifact in `folder` (verified first: a broken artifact is never registered)."""
    try:
        manifest = load_model(folder).manifest
    except ModelLoadError as exc:
        raise CommandError(f"not registered: {exc}") from None
    async with _session(settings) as db:
        new = await register_version(db, manifest, folder)
    state = "registered" if new else "already registered"
    where = f"{stored_path(folder)}, sha256 {manifest.sha256[:12]}..."
    return f"{manifest.name} {manifest.version} {state} ({where})"


async def move_alias(settings: Settings, name: str, alias: str, version: str) -> str:
    async with _session(settings) as db:
        before = await set_alias(db, name, alias, version)
    was = f" (was {before})" if before else ""
    return f"{name} {alias} -> {version}{was}; each app process switches once it has checked it"


# --8<-- [end:commands]


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session on the settings' database. A refusal of the registry (ServiceError), a schema
    without its tables, or a database out of reach becomes a CommandError of one line."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            yield db
    except ServiceError as exc:
        raise CommandError(str(exc)) from None
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != UNDEFINED_TABLE:
            raise
        message = "the database has no model registry yet: run `python3 tasks.py upgrade`"
        raise CommandError(message, unreachable=True) from None
    except (DBAPIError, OSError) as exc:
        raise CommandError(f"cannot reach the database ({type(exc).__name__})", unreachable=True) from None
    finally:
        await engine.dispose()
