"""The proof in two tiers (TT02): the default tier proves every catalogue item but a short,
reasoned list; the full tier adds what needs a browser, other processes, signals or images."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.patterns import SLOW_ONLY, catalogue_line, collect_marks, coverage, problems, required
from tests.support import ROOT


# --8<-- [start:tier_tests]
@pytest.mark.pattern("TT02")
def test_every_item_has_a_default_tier_test_but_the_slow_only_ones() -> None:
    cov = coverage()
    assert problems(cov) == []  # what `python3 tasks.py patterns` fails on
    assert len(SLOW_ONLY) <= 8  # short: a test belongs in the default tier unless it cannot
    assert all(len(reason) > 20 for reason in SLOW_ONLY.values())  # each says what it needs
    assert [i for i in SLOW_ONLY if cov.default_tests(i)] == []  # none that the default tier proves
    needed = [i for i, item in cov.items.items() if required(item)]
    assert sum(cov.tier(i) == "default" for i in needed) == len(needed) - len(SLOW_ONLY)


@pytest.mark.pattern("TT02")
def test_system_marks_are_read_from_tests_classes_and_modules(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "import pytest\n"
        "@pytest.mark.system('a browser')\n@pytest.mark.pattern('X01')\ndef test_slow(): ...\n"
        "@pytest.mark.pattern('X01', 'X02')\ndef test_fast(): ...\n"
        "@pytest.mark.system\nclass TestGroup:\n"
        "    @pytest.mark.pattern('X03')\n    def test_in_class(self): ...\n"
    )
    (tests / "test_b.py").write_text(
        "import pytest\npytestmark = [pytest.mark.pattern('X04'), pytest.mark.system('a process')]\n"
        "def test_module_marked(): ...\n"
    )
    marks, system = collect_marks(tests)
    assert marks["X01"] == ["tests/test_a.py::test_slow", "tests/test_a.py::test_fast"]
    assert marks["X03"] == ["tests/test_a.py::TestGroup::test_in_class"]
    assert system == {
        "tests/test_a.py::test_slow",
        "tests/test_a.py::TestGroup::test_in_class",
        "tests/test_b.py::test_module_marked",
    }


@pytest.mark.pattern("TT02")
def test_the_catalogue_part_of_the_last_line() -> None:
    cov = coverage()
    needed = sum(1 for item in cov.items.values() if required(item))
    default = catalogue_line(cov, full_tier=False)
    assert re.fullmatch(
        rf"{needed}/{needed} catalogue items \({len(SLOW_ONLY)} of them in the full tier only: .*\)", default
    )
    assert catalogue_line(cov, full_tier=True) == f"{needed}/{needed} catalogue items"


# --8<-- [end:tier_tests]


@pytest.mark.system("python3 tasks.py test as a process, with a PostgreSQL of its own")
@pytest.mark.pattern("TT02")
def test_the_test_command_ends_with_one_line_of_counts() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "tasks.py",
            "test",
            "--args",
            "-q tests/test_factory.py::test_importing_the_app_opens_nothing",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.fullmatch(r"1 passed in \d+ s", result.stdout.strip().splitlines()[-1])
