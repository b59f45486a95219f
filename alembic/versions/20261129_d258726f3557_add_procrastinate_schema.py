"""add procrastinate schema

The job queue's tables, types, functions and triggers (ML07), exactly as procrastinate 3.10.0
ships them (its `procrastinate/sql/schema.sql`, copied to alembic/sql/ so this revision never
changes). A later procrastinate with schema changes needs a revision that applies its migration
files (`procrastinate/sql/migrations/`) from 3.10.0 on; a test compares the copy with the
installed package and says so.

The statements run one at a time: asyncpg (the app) and psycopg (pytest-alembic) both refuse a
multi-statement script with bound parameters, and `--sql` prints them as they are.

Revision ID: d258726f3557
Revises: 928435d03ec6
Create Date: 2026-11-29 22:09:55.497233

"""

from collections.abc import Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d258726f3557"
down_revision: str | Sequence[str] | None = "928435d03ec6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = Path(__file__).resolve().parent.parent / "sql" / "procrastinate-3.10.0-schema.sql"
TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)
TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def statements(script: str) -> Iterator[str]:
    """The script's statements: split on a `;` that ends a line outside a $$ ... $$ body."""
    current: list[str] = []
    in_body = False
    for line in script.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        in_body ^= line.count("$$") % 2 == 1
        if not in_body and line.rstrip().endswith(";"):
            yield "\n".join(current)
            current = []
    if current:
        raise ValueError(f"{SCHEMA.name} ends inside a statement: {current[0]!r}")


def upgrade() -> None:
    for statement in statements(SCHEMA.read_text(encoding="utf-8")):
        op.execute(sa.text(statement))


def downgrade() -> None:
    # The tables, with what depends on them (their triggers and indexes, the functions that
    # return a job row), then the other functions, then the types.
    op.execute(f"DROP TABLE {', '.join(TABLES)} CASCADE")
    op.execute(
        """
        DO $$
        DECLARE routine regprocedure;
        BEGIN
            FOR routine IN
                SELECT oid::regprocedure FROM pg_proc
                WHERE proname LIKE 'procrastinate\\_%' AND pronamespace = current_schema()::regnamespace
            LOOP
                EXECUTE 'DROP ROUTINE ' || routine;
            END LOOP;
        END
        $$"""
    )
    op.execute(f"DROP TYPE {', '.join(TYPES)}")
