"""Which schema revision this code expects: Alembic's head, read from the script directory once
at start-up (readiness compares the database's `alembic_version` with it on every probe)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"  # beside example_app/, in the image too


# --8<-- [start:schema_head]
@dataclass(frozen=True)
class SchemaHead:
    heads: frozenset[str]  # what `alembic upgrade head` leaves in alembic_version
    known: frozenset[str]  # every revision of this code's history

    @classmethod
    def read(cls, ini: Path = ALEMBIC_INI) -> SchemaHead:
        script = ScriptDirectory.from_config(Config(str(ini)))  # the files only: no database
        return cls(frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions()))

    def problem(self, database: set[str]) -> str | None:
        """None when the database's revisions are usable by this code; else one line why not."""
        if not database:
            return "not migrated: no revision in alembic_version"
        if database == self.heads or not database <= self.known:
            # Unknown to this code: a newer release migrated it. Revisions only add (columns,
            # tables, indexes), so the old code still works on it while the rollout goes on.
            return None
        return f"behind: at {', '.join(sorted(database))}, this code needs {', '.join(sorted(self.heads))}"


# --8<-- [end:schema_head]
