"""Autogenerate from the models, with the commands `python3 tasks.py db.revision` runs.

A new feature's model lives in a module outside the repository that only the copied env.py
imports, and alembic's command line is pointed at that copy of alembic/: the repository is
never changed. The commands run in this process, so the model's table is taken out of this
process's SQLModel.metadata afterwards (tests/docs/test_shell_commands.py runs the task itself).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from alembic import command
from tests.migrations.schema import head, version
from tests.migrations.workspace import alembic, copy_alembic, versions
from tests.support import ROOT, NewDatabase, alembic_config, sync_url

# The new feature, step 1 of the workflow: a model module. Step 2 runs autogenerate with the
# project's env.py, template and ini (here: their copies, the env.py importing this module).
NEW_FEATURE = """
from sqlmodel import Field, SQLModel

import example_app.models  # noqa: F401  (the project's tables, and the naming convention)


class Experiment(SQLModel, table=True):
    __tablename__ = "experiments"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    owner_id: int = Field(foreign_key="users.id")
"""


def add_feature_model(tmp_path: Path, ini: Path) -> None:
    """Write the model module beside the copy and make the copied env.py import it."""
    (tmp_path / "experiment_model.py").write_text(NEW_FEATURE)
    env = tmp_path / "alembic" / "env.py"
    anchor = "import example_app.models  # noqa: F401"
    assert anchor in env.read_text()
    env.write_text(env.read_text().replace(anchor, f"import experiment_model  # noqa: F401\n{anchor}", 1))
    text = ini.read_text()
    assert "prepend_sys_path = .\n" in text
    ini.write_text(text.replace("prepend_sys_path = .\n", f"prepend_sys_path = .{os.pathsep}{tmp_path}\n"))


def upgrade_body(source: str) -> str:
    return source.split("def upgrade() -> None:", 1)[1].split("def downgrade() -> None:", 1)[0]


@pytest.fixture
def feature_model(tmp_path: Path) -> Iterator[Path]:
    """The copy of alembic/ whose env.py imports the new feature's model; the ini's path.

    Afterwards this process is as before: no `experiments` table in SQLModel.metadata, no module
    or path of the copy's."""
    ini = copy_alembic(tmp_path)
    add_feature_model(tmp_path, ini)
    path = list(sys.path)
    try:
        yield ini
    finally:
        module = sys.modules.pop("experiment_model", None)
        if module is not None:
            SQLModel.metadata.remove(module.Experiment.__table__)
        sys.path[:] = path


# --8<-- [start:autogenerate_test]
@pytest.mark.pattern("W03", "MG01", "E18")
def test_autogenerate_writes_a_revision_that_applies_to_an_empty_database(
    tmp_path: Path, feature_model: Path, new_database: NewDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    repository_versions = versions(ROOT / "alembic")
    ini = feature_model
    scratch = new_database()

    # The task upgrades the database to head first (autogenerate compares with an up-to-date
    # schema), then runs `alembic revision --autogenerate -m ...`; here both on the copy.
    alembic(["-c", str(ini), "upgrade", "head"], scratch)
    with caplog.at_level(logging.INFO, logger="alembic.autogenerate"):
        alembic(["-c", str(ini), "revision", "--autogenerate", "-m", "add experiments table"], scratch)
    assert "Detected added table 'experiments'" in caplog.text
    # The revision needs no model: from here on the copy's env.py is the project's own.
    shutil.copy(ROOT / "alembic" / "env.py", tmp_path / "alembic" / "env.py")

    [generated] = set(versions(tmp_path / "alembic")) - set(repository_versions)
    assert generated.endswith("_add_experiments_table.py")
    script = ScriptDirectory.from_config(alembic_config(scratch, ini=ini))
    revision = script.get_revision(generated.split("_")[1])
    assert revision.down_revision == head()  # on top of the project's history
    source = (tmp_path / "alembic" / "versions" / generated).read_text()
    # str fields become SQLModel's AutoString: the file needs `import sqlmodel` (the template has it)
    assert "sqlmodel.sql.sqltypes.AutoString(length=100)" in source
    assert "\nimport sqlmodel.sql.sqltypes" in source
    # Only the new table: no other difference between the models and the migrations.
    assert set(re.findall(r"op\.(\w+)\(", upgrade_body(source))) == {"create_table", "create_index", "f"}
    for name in ("pk_experiments", "fk_experiments_owner_id_users", "ix_experiments_name"):
        assert f'op.f("{name}")' in source  # names from the naming convention

    # The generated revision builds the whole schema on an empty database.
    empty = new_database()
    command.upgrade(alembic_config(empty, ini=ini), "head")
    engine = create_engine(sync_url(empty), poolclass=NullPool)
    try:
        assert version(engine) == revision.revision
        with engine.connect() as conn:
            name_type = conn.scalar(
                text(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'experiments'::regclass AND attname = 'name'"
                )
            )
        assert name_type == "character varying(100)"
    finally:
        engine.dispose()

    # The guide's template did not import sqlmodel: the same file then fails to load.
    path = tmp_path / "alembic" / "versions" / generated
    path.write_text(source.replace("\nimport sqlmodel.sql.sqltypes", "\n"))
    with pytest.raises(NameError, match="name 'sqlmodel' is not defined"):
        command.upgrade(alembic_config(new_database(), ini=ini), "head")

    assert versions(ROOT / "alembic") == repository_versions  # the repository is untouched


# --8<-- [end:autogenerate_test]


def test_the_feature_model_leaves_this_process_as_it_was() -> None:
    """Runs after the test above (file order): its model is not among this process's tables."""
    assert "experiments" not in SQLModel.metadata.tables
    assert "experiment_model" not in sys.modules
