"""Troubleshooting: two heads (two branches each added a revision), detected and merged.

The heads are made in a copy of alembic/ (workspace.copy_alembic): the repository is never changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_alembic
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from pytest_alembic import tests as standard
from pytest_alembic.plugin.error import AlembicTestFailure
from sqlalchemy import Engine, text

from alembic import command
from tests.migrations.schema import head, version
from tests.migrations.workspace import alembic, copy_alembic
from tests.support import alembic_config


# --8<-- [start:merge_heads]
@pytest.mark.pattern("TS03", "E20", "MG06")
def test_two_heads_are_detected_and_merged(tmp_path: Path, scratch_url: str, scratch_engine: Engine) -> None:
    ini = copy_alembic(tmp_path)
    cfg = alembic_config(scratch_url, ini=ini)
    command.upgrade(cfg, "head")
    # Two branches, each with a revision on top of the same head, merged in git: two heads.
    first = command.revision(cfg, message="add feature a")
    assert isinstance(first, Script)
    second = command.revision(cfg, message="add feature b", head=head(), splice=True)
    assert isinstance(second, Script)
    assert sorted(ScriptDirectory.from_config(cfg).get_heads()) == sorted([first.revision, second.revision])

    # What a reader sees:
    failed = alembic(["-c", str(ini), "upgrade", "head"], scratch_url, check=False)
    assert failed.returncode != 0
    assert "FAILED: Multiple head revisions are present for given argument 'head'" in failed.stdout
    # The single-head check in the test suite (pytest-alembic's) catches it before deployment.
    with (
        pytest_alembic.runner(
            config=pytest_alembic.Config.from_raw_config(cfg), engine=scratch_engine
        ) as runner,
        pytest.raises(AlembicTestFailure, match="Expected 1 head revision, found 2"),
    ):
        standard.test_single_head_revision(runner)

    merged = alembic(["-c", str(ini), "merge", "-m", "merge heads", "heads"], scratch_url)
    assert "merge_heads.py" in merged.stdout
    [merge] = ScriptDirectory.from_config(cfg).get_heads()
    assert set(ScriptDirectory.from_config(cfg).get_revision(merge).down_revision or ()) == {
        first.revision,
        second.revision,
    }
    alembic(["-c", str(ini), "upgrade", "head"], scratch_url)
    assert version(scratch_engine) == merge
    assert alembic(["-c", str(ini), "current"], scratch_url).stdout.strip() == f"{merge} (head) (mergepoint)"


# --8<-- [end:merge_heads]


@pytest.mark.pattern("TS03", "MG04")
def test_below_a_merge_point_downgrade_names_its_target(
    tmp_path: Path, scratch_url: str, scratch_engine: Engine
) -> None:
    ini = copy_alembic(tmp_path)
    cfg = alembic_config(scratch_url, ini=ini)
    first = command.revision(cfg, message="add feature a")
    assert isinstance(first, Script)
    second = command.revision(cfg, message="add feature b", head=head(), splice=True)
    assert isinstance(second, Script)
    command.merge(cfg, "heads", message="merge heads")
    command.upgrade(cfg, "head")
    with pytest.raises(CommandError, match="Ambiguous walk"):
        command.downgrade(cfg, "-1")  # two parents: "one step back" has no single answer
    command.downgrade(cfg, first.revision)  # by id: undo the merge only; both branches stay
    with scratch_engine.connect() as conn:
        rows = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
    assert rows == {first.revision, second.revision}
