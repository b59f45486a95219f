"""The `predictions` table: one row per answered prediction, the log an ML backend is audited by."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from example_app.models.base import SQLModel
from example_app.models.timestamps import created_at_field


class PredictionLog(SQLModel, table=True):
    __tablename__ = "predictions"
    __table_args__ = (
        # Newest-first pages and keyset pagination on (created_at, id).
        Index("ix_predictions_created_at_id", "created_at", "id"),
        # Containment queries on the answer (`output @> '{"label": 3}'`); jsonb_path_ops is
        # smaller and faster than the default operator class, and @> is all it needs to serve.
        Index(
            "ix_predictions_output",
            "output",
            postgresql_using="gin",
            postgresql_ops={"output": "jsonb_path_ops"},
        ),
        # The shadow report joins each shadow row to its production row, newest first; partial:
        # the rows that shadow nothing (most of the log) are not in it.
        Index("ix_predictions_shadow_of", "shadow_of", postgresql_where=text("shadow_of IS NOT NULL")),
    )

    # bigint: a log table outgrows int4's 2.1 billion rows long before a users table would.
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    # Which model answered: the name and version of the manifest, and the artifact's checksum.
    model_name: str = Field(max_length=100)
    model_version: str = Field(max_length=50)
    model_sha256: str = Field(min_length=64, max_length=64)
    input: dict[str, Any] = Field(sa_type=JSONB)
    output: dict[str, Any] = Field(sa_type=JSONB)
    latency_ms: float  # inference time of the request this row came from (a batch shares it)
    # The request's X-Request-ID: joins the row to that request's log lines and error reports.
    # No index: it is looked up by an operator now and then, and every insert would pay for one.
    request_id: str | None = Field(default=None, max_length=64)
    # A shadow row (the candidate's answer to the same input, never returned): the production
    # row it shadows. NULL for a row that answered a caller.
    shadow_of: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, ForeignKey("predictions.id", ondelete="CASCADE"), nullable=True),
    )
    created_at: datetime = created_at_field()
