"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    """The project's alembic.ini, pointed at `database_url`, without touching logging."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logger"] = False
    return cfg
