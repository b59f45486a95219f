"""The model registry's rows: register a version, point an alias at one, read them back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.config import APP_DIR
from example_app.ml.artifact import Manifest
from example_app.models import ModelAlias, ModelVersion
from example_app.services.errors import ConflictError, UnknownVersionError

PROJECT_DIR = APP_DIR.parent  # a relative artifact_path is relative to this


@dataclass(frozen=True)
class VersionRow:
    """What the app needs of a registered version to load it."""

    name: str
    version: str
    artifact_path: str
    sha256: str


def stored_path(folder: Path) -> str:
    """How a folder is written in `artifact_path`: relative to the project when inside it."""
    resolved = folder.resolve()
    return str(resolved.relative_to(PROJECT_DIR)) if resolved.is_relative_to(PROJECT_DIR) else str(resolved)


# --8<-- [start:register]
async def register_version(db: AsyncSession, manifest: Manifest, folder: Path) -> bool:
    """Record `manifest`'s version at `folder`; True if new. A version is immutable: the same
    name and version with another checksum is refused (train it under a new version)."""
    values = {
        "name": manifest.name,
        "version": manifest.version,
        "artifact_path": stored_path(folder),
        "sha256": manifest.sha256,
        "metrics": manifest.metrics.model_dump(mode="json"),
    }
    statement = insert(ModelVersion).values(values).on_conflict_do_nothing().returning(col(ModelVersion.name))
    inserted = (await db.exec(statement)).first() is not None
    if not inserted:
        existing = await db.get(ModelVersion, (manifest.name, manifest.version))
        if existing is not None and (registered := existing.sha256) != manifest.sha256:
            await db.rollback()
            raise ConflictError(
                f"{manifest.name} {manifest.version} is registered with sha256 {registered[:12]}..., "
                f"this artifact has {manifest.sha256[:12]}...; a version never changes: train a new one"
            )
    await db.commit()
    return inserted


async def set_alias(db: AsyncSession, name: str, alias: str, version: str) -> str | None:
    """Point `alias` of model `name` at a registered `version`; the version it pointed at before.
    The row's trigger NOTIFYs every app process at commit."""
    if await db.get(ModelVersion, (name, version)) is None:
        known = await versions_of(db, name)
        raise UnknownVersionError(
            f"{name} {version} is not registered"
            + (f" (registered: {', '.join(known)})" if known else f" (no version of {name!r} is registered)")
        )
    previous = await db.get(ModelAlias, (name, alias), with_for_update=True)
    before = previous.version if previous else None
    statement = insert(ModelAlias).values(name=name, alias=alias, version=version)
    statement = statement.on_conflict_do_update(
        index_elements=[col(ModelAlias.name), col(ModelAlias.alias)],
        set_={"version": statement.excluded.version, "updated_at": statement.excluded.updated_at},
    )
    await db.exec(statement)
    await db.commit()
    return before


# --8<-- [end:register]


async def versions_of(db: AsyncSession, name: str) -> list[str]:
    rows = await db.exec(select(ModelVersion.version).where(col(ModelVersion.name) == name))
    return sorted(rows.all(), key=_semver)


async def read_version(db: AsyncSession, name: str, version: str) -> VersionRow | None:
    row = await db.get(ModelVersion, (name, version))
    return None if row is None else VersionRow(row.name, row.version, row.artifact_path, row.sha256)


async def read_aliases(
    db: AsyncSession, names: Iterable[str], aliases: Iterable[str]
) -> dict[tuple[str, str], VersionRow]:
    """(name, alias) -> the version it points at, for the names and aliases asked for."""
    same_version = (col(ModelVersion.name) == col(ModelAlias.name)) & (
        col(ModelVersion.version) == col(ModelAlias.version)
    )
    statement = (
        select(ModelAlias.alias, ModelVersion)
        .join(ModelVersion, same_version)
        .where(col(ModelAlias.name).in_(list(names)), col(ModelAlias.alias).in_(list(aliases)))
    )
    rows: Sequence[tuple[str, ModelVersion]] = (await db.exec(statement)).all()
    return {(v.name, alias): VersionRow(v.name, v.version, v.artifact_path, v.sha256) for alias, v in rows}


# The same read on a plain asyncpg connection: the alias watcher's own (alias_watcher.py), which
# is outside the engine's pool, so following the aliases takes no pooled connection.
ALIASES_QUERY = """
SELECT v.name, a.alias, v.version, v.artifact_path, v.sha256
FROM model_aliases a JOIN model_versions v ON v.name = a.name AND v.version = a.version
WHERE a.name = ANY($1::text[]) AND a.alias = ANY($2::text[])
"""


async def read_aliases_on(
    connection: asyncpg.Connection, names: Iterable[str], aliases: Iterable[str], seconds: float
) -> dict[tuple[str, str], VersionRow]:
    rows = await connection.fetch(ALIASES_QUERY, list(names), list(aliases), timeout=seconds)
    return {
        (r["name"], r["alias"]): VersionRow(r["name"], r["version"], r["artifact_path"], r["sha256"])
        for r in rows
    }


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
