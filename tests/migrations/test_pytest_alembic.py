"""pytest-alembic's standard suite, run on an empty scratch database by plain `pytest`.

The plugin's own collection needs `--test-alembic` and lands in one conftest of its choosing;
thin wrappers around `pytest_alembic.tests` run the same four checks everywhere `pytest`
runs, and carry the catalogue's marks. The fixtures are in tests/migrations/conftest.py.
"""

from __future__ import annotations

import pytest
from pytest_alembic import MigrationContext
from pytest_alembic import tests as standard

from tests.migrations.schema import head, revisions


@pytest.mark.pattern("E20", "TS03")
def test_single_head_revision(alembic_runner: MigrationContext) -> None:
    standard.test_single_head_revision(alembic_runner)
    assert alembic_runner.heads == [head()]


@pytest.mark.pattern("W04", "MG03")
def test_upgrade(alembic_runner: MigrationContext) -> None:
    standard.test_upgrade(alembic_runner)
    assert alembic_runner.current == head()


@pytest.mark.pattern("D08", "W02")
def test_model_definitions_match_ddl(alembic_runner: MigrationContext) -> None:
    standard.test_model_definitions_match_ddl(alembic_runner)  # fails on any autogenerate diff
    assert alembic_runner.current == head()


@pytest.mark.pattern("D09", "MG03", "MG04")
def test_up_down_consistency(alembic_runner: MigrationContext) -> None:
    standard.test_up_down_consistency(alembic_runner)  # every upgrade, downgrade, upgrade again
    assert alembic_runner.history.revisions == ["base", *revisions(), "heads"]
