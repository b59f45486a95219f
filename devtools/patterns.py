"""The pattern catalogue (PATTERNS.md) and which tests verify which item.

Tests carry `@pytest.mark.pattern("E05", ...)`; this module reads those marks statically (no
database needed) so that `tasks.py patterns` and the guide's pattern index agree. A test marked
`@pytest.mark.system` (or a module with it in `pytestmark`) belongs to the full tier only
(`tasks.py test --all`); every other test runs in the default tier (`tasks.py test`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shared catalogue is the source; the vendored copy keeps a bare clone working.
CATALOGUE_PATHS = (ROOT.parent / "shared" / "PATTERNS.md", Path(__file__).with_name("PATTERNS.md"))
ROW = re.compile(r"^\|\s*(?P<id>[A-Z]{1,2}\d{2})\s*\|(?P<rest>.*)\|\s*$")
# Groups whose every item must have a test (ML items arrive with their own issue).
REQUIRED_GROUPS = (
    *("W", "D", "S", "M", "SC", "R", "SV", "DB", "MG", "T", "TS", "E"),
    *("AU", "HD", "PF", "DP", "TT", "OB", "LC"),
)
# Items of groups that are only partly built yet: the ML items (serving, the log, search, jobs).
REQUIRED_ITEMS = (
    *("ML01", "ML02", "ML03", "ML04", "ML05", "ML06"),
    *("ML07", "ML08", "ML09", "ML10", "ML11", "ML12"),
)


SYSTEM = "system"  # the mark of a full-tier test
# --8<-- [start:slow_only]
# The only catalogue items proved in the full tier alone, each for what it cannot do without:
# everything else has a test in the default tier, in one process, rolled back per test.
SLOW_ONLY = {
    "DP02": "a PgBouncer process in front of the server, in transaction mode",
    "DP04": "a signal to a server process (SIGTERM) while clients wait on it",
    "DP05": "a container image built and run by a Docker engine",
    "HD06": "a minute of load from wrk against a served app",
    "PF02": "wrk load against the app served beside raw asyncpg",
    "OB07": "wrk load against the app served with and without metrics and traces",
}
# --8<-- [end:slow_only]


@dataclass(frozen=True)
class Item:
    id: str
    group: str
    text: str  # the item's second column, as written in the catalogue


@dataclass
class Coverage:
    items: dict[str, Item]
    tests: dict[str, list[str]] = field(default_factory=dict)  # id -> ["tests/x.py::test_y"]
    unknown: dict[str, list[str]] = field(default_factory=dict)  # marks naming no item
    system: set[str] = field(default_factory=set)  # the tests of the full tier only

    def missing(self, groups: tuple[str, ...] = REQUIRED_GROUPS) -> list[str]:
        return [i for i, item in self.items.items() if required(item, groups) and not self.tests.get(i)]

    def default_tests(self, item_id: str) -> list[str]:
        return [t for t in self.tests.get(item_id, []) if t not in self.system]

    def tier(self, item_id: str) -> str:
        """ "default" when a default-tier test proves the item, "full" when only system tests do."""
        if self.default_tests(item_id):
            return "default"
        return "full" if self.tests.get(item_id) else "-"

    def missing_default(self, groups: tuple[str, ...] = REQUIRED_GROUPS) -> list[str]:
        """Required items with tests, none of them in the default tier, and not in SLOW_ONLY."""
        return [
            i
            for i, item in self.items.items()
            if required(item, groups) and self.tests.get(i) and not self.default_tests(i)
            if i not in SLOW_ONLY
        ]


def required(item: Item, groups: tuple[str, ...] = REQUIRED_GROUPS) -> bool:
    return item.group in groups or item.id in REQUIRED_ITEMS


def catalogue_path() -> Path:
    for path in CATALOGUE_PATHS:
        if path.exists():
            return path
    raise FileNotFoundError("PATTERNS.md not found")


def load_catalogue(path: Path | None = None) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for line in (path or catalogue_path()).read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            item_id = match["id"]
            text = match["rest"].split("|")[0].strip()
            items[item_id] = Item(item_id, re.sub(r"\d+$", "", item_id), text)
    return items


def _is_system(decorator: ast.expr) -> bool:
    """Whether the expression is `pytest.mark.system` (or a call of it, with a reason)."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(node, ast.Attribute) and node.attr == SYSTEM


def _mark_ids(decorator: ast.expr) -> list[str]:
    """IDs of a `pytest.mark.pattern("A01", "B02")` expression, else []."""
    if not isinstance(decorator, ast.Call):
        return []
    func = decorator.func
    if isinstance(func, ast.Attribute) and func.attr == "pattern":
        return [a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return []


def _visit(
    nodes: list[ast.stmt],
    prefix: str,
    inherited: list[str],
    system: bool,
    out: dict[str, list[str]],
    system_tests: set[str],
) -> None:
    """Add `prefix + test name` under each ID marked on it (or on its class/module)."""
    for node in nodes:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            ids = inherited + [i for d in node.decorator_list for i in _mark_ids(d)]
            slow = system or any(_is_system(d) for d in node.decorator_list)
        if isinstance(node, ast.ClassDef):
            _visit(node.body, f"{prefix}{node.name}::", ids, slow, out, system_tests)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            test = f"{prefix}{node.name}"
            if slow:
                system_tests.add(test)
            for item_id in dict.fromkeys(ids):
                out.setdefault(item_id, []).append(test)


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    """The expressions of the module's `pytestmark = ...` (one mark or a list of them)."""
    return [
        expr
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
        for expr in (node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value])
    ]


def collect_marks(tests_dir: Path | None = None) -> tuple[dict[str, list[str]], set[str]]:
    """id -> test node ids, from decorators on test functions and classes, and `pytestmark`;
    and the node ids of the tests marked `system`."""
    found: dict[str, list[str]] = {}
    system_tests: set[str] = set()
    base = tests_dir or ROOT / "tests"
    for path in sorted(base.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(base.parent).as_posix()  # tests/...: from the project's root
        marks = _module_marks(tree)
        module_ids = [i for expr in marks for i in _mark_ids(expr)]
        _visit(tree.body, f"{rel}::", module_ids, any(map(_is_system, marks)), found, system_tests)
    return found, system_tests


def coverage() -> Coverage:
    items = load_catalogue()
    marks, system_tests = collect_marks()
    return Coverage(
        items=items,
        tests={i: marks.get(i, []) for i in items},
        unknown={i: tests for i, tests in marks.items() if i not in items},
        system=system_tests,
    )


def problems(cov: Coverage, groups: tuple[str, ...] = REQUIRED_GROUPS) -> list[str]:
    """What keeps the catalogue from being proved: empty when every required item has a test,
    in the default tier unless SLOW_ONLY names it, and every mark names an item."""
    found = []
    if cov.unknown:
        found.append(f"marks naming no catalogue item: {', '.join(sorted(cov.unknown))}")
    if missing := cov.missing(groups):
        found.append(f"required items without a test: {', '.join(missing)}")
    if slow := cov.missing_default(groups):
        found.append(f"required items with no default-tier test (and not in SLOW_ONLY): {', '.join(slow)}")
    if untested := [i for i in SLOW_ONLY if not cov.tests.get(i)]:
        found.append(f"SLOW_ONLY items without a test: {', '.join(untested)}")
    return found


def catalogue_line(cov: Coverage, full_tier: bool) -> str:
    """The catalogue's part of the test command's last line: "134/134 catalogue items", and in
    the default tier how many of them the full tier proves instead."""
    needed = [i for i, item in cov.items.items() if required(item)]
    proved = [i for i in needed if cov.tests.get(i) if full_tier or cov.default_tests(i) or i in SLOW_ONLY]
    line = f"{len(proved)}/{len(needed)} catalogue items"
    if not full_tier:
        line += f" ({len(SLOW_ONLY)} of them in the full tier only: python3 tasks.py test --all)"
    return line
