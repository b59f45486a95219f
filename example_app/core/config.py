"""Application settings, read from the environment (and an optional `.env` file)."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

APP_DIR = Path(__file__).resolve().parent.parent


# --8<-- [start:settings]
class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # An explicit async driver: a bare postgresql:// would make SQLAlchemy 2.1 pick psycopg.
    DATABASE_URL: str
    DEBUG: bool = False
    API_V1_PREFIX: str = "/api/v1"
    # One uvicorn worker holds at most POOL_SIZE + MAX_OVERFLOW connections; keep
    # workers x that below PostgreSQL's max_connections (100 by default).
    DB_POOL_SIZE: Annotated[int, Field(ge=1)] = 10
    DB_MAX_OVERFLOW: Annotated[int, Field(ge=0)] = 10
    DB_POOL_TIMEOUT: Annotated[float, Field(gt=0)] = 10.0
    DB_ECHO: bool = False  # SQL logging; bound parameters are never logged
    HEALTH_CHECK_TIMEOUT: Annotated[float, Field(gt=0)] = 2.0

    # The served model: a folder with manifest.json and the file it names (checksum verified).
    MODEL_DIR: Path = APP_DIR / "ml" / "artifacts" / "digits"
    # Rows per POST /predictions/batch: one vectorised predict and one INSERT of that many rows.
    PREDICTION_BATCH_MAX: Annotated[int, Field(ge=1, le=10_000)] = 1_000
    # Predictions computing at once (threads in the pool); more wait, up to INFERENCE_TIMEOUT.
    INFERENCE_CONCURRENCY: Annotated[int, Field(ge=1, le=64)] = 2
    INFERENCE_TIMEOUT: Annotated[float, Field(gt=0)] = 5.0
    # Request bodies above this are refused with 413 while they are read, before parsing. The
    # largest legitimate body is a full prediction batch (1,000 rows of 64 numbers: about 0.5 MB).
    MAX_REQUEST_BODY_BYTES: Annotated[int, Field(ge=1_024)] = 2 * 1024 * 1024

    @field_validator("DATABASE_URL")
    @classmethod
    def _async_postgres_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected postgresql+asyncpg://user:password@host:5432/dbname "
                "(percent-encode special characters in the password)"
            ) from None
        if url.drivername != "postgresql+asyncpg":
            raise ValueError(f"driver {url.drivername!r} is not supported; use postgresql+asyncpg://...")
        if not url.database:
            raise ValueError("the URL names no database")
        return value

    @property
    def database_url(self) -> URL:
        return make_url(self.DATABASE_URL)


# --8<-- [end:settings]


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is not set"
        parts.append(f"{field} {message}")
    return "Invalid settings: " + "; ".join(parts)


@lru_cache
def get_settings() -> Settings:
    """Load settings once; a bad value stops start-up with one readable line."""
    try:
        return Settings()  # values come from the environment
    except ValidationError as error:
        raise SystemExit(_one_line(error)) from None
