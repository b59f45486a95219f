"""The model registry: every trained version of a model, and the aliases that point at one."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from example_app.models.base import SQLModel
from example_app.models.timestamps import created_at_field, updated_at_field

# The channel a change of `model_aliases` is announced on (a trigger of the migration NOTIFYs it,
# whoever writes the row: a task, an operator's psql, a script).
ALIASES_CHANNEL = "model_aliases"


# --8<-- [start:tables]
class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"

    name: str = Field(primary_key=True, max_length=100)
    version: str = Field(primary_key=True, max_length=50)
    # A folder holding manifest.json and the model file: relative to the project's root, or
    # absolute. The app loads it only from inside MODEL_ROOTS, and only with this checksum.
    artifact_path: str = Field(max_length=500)
    sha256: str = Field(min_length=64, max_length=64)
    metrics: dict[str, Any] = Field(sa_type=JSONB)  # the manifest's held-out metrics
    created_at: datetime = created_at_field()


class ModelAlias(SQLModel, table=True):
    __tablename__ = "model_aliases"
    # An alias points at a registered version: a version with an alias cannot be deleted.
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
        ),
    )

    name: str = Field(primary_key=True, max_length=100)
    alias: str = Field(primary_key=True, max_length=50)  # production, candidate, or any name
    version: str = Field(max_length=50)
    updated_at: datetime = updated_at_field()


# --8<-- [end:tables]
