"""Read a live PostgreSQL schema back from the catalogues, to compare it with what we expect."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from tests.support import alembic_config


def revisions() -> list[str]:
    """Revision ids from base to head (the history is linear: one head, one base)."""
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg:///unused"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head() -> str:
    return revisions()[-1]


def snapshot(db: Engine | Connection) -> set[str]:
    """Tables, columns, indexes and constraints of schema `public`, one readable line each.

    `alembic_version` is Alembic's bookkeeping, not the application's schema: left out, and so
    are the job queue's tables (procrastinate's schema, applied whole by one revision).
    Column order is left out too (ADD COLUMN appends, create_all follows the model).
    """
    queries = {
        "table": """
            SELECT table_name FROM information_schema.tables
            WHERE table_schema = 'public' AND table_name <> 'alembic_version'
              AND table_name NOT LIKE 'procrastinate%'""",
        "column": """
            SELECT table_name || '.' || column_name || ' ' || data_type
                   || coalesce('(' || character_maximum_length || ')', '')
                   || CASE is_nullable WHEN 'NO' THEN ' NOT NULL' ELSE ' NULL' END
                   || coalesce(' DEFAULT ' || column_default, '')
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name <> 'alembic_version'
              AND table_name NOT LIKE 'procrastinate%'""",
        "index": """
            SELECT indexdef FROM pg_indexes
            WHERE schemaname = 'public' AND tablename <> 'alembic_version'
              AND tablename NOT LIKE 'procrastinate%'""",
        "constraint": """
            SELECT rel.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
            FROM pg_constraint con
            JOIN pg_class rel ON rel.oid = con.conrelid
            JOIN pg_namespace nsp ON nsp.oid = rel.relnamespace
            WHERE nsp.nspname = 'public' AND rel.relname <> 'alembic_version'
              AND rel.relname NOT LIKE 'procrastinate%'""",
    }

    def read(conn: Connection) -> set[str]:
        return {f"{kind} {line}" for kind, sql in queries.items() for line in conn.scalars(text(sql))}

    if isinstance(db, Engine):
        with db.connect() as conn:
            return read(conn)
    return read(db)


def version(db: Engine) -> str | None:
    """The revision recorded in alembic_version (None: no table, or an empty one)."""
    with db.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('alembic_version')")) is None:
            return None
        found: str | None = conn.scalar(text("SELECT version_num FROM alembic_version"))
        return found
