"""The pattern catalogue (PATTERNS.md) and which tests verify which item.

Tests carry `@pytest.mark.pattern("E05", ...)`; this module reads those marks statically (no
database needed) so that `tasks.py patterns` and the guide's pattern index agree.
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
REQUIRED_GROUPS = ("W", "D", "S", "M", "SC", "R", "SV", "DB", "MG", "T", "TS", "E", "AU", "HD", "PF")
# Items of groups that are only partly built yet: the ML items are (serving, the log, search, jobs).
REQUIRED_ITEMS = (
    *("ML01", "ML02", "ML03", "ML04", "ML05", "ML06"),
    *("ML07", "ML08", "ML09", "ML10", "ML11", "ML12"),
)


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

    def missing(self, groups: tuple[str, ...] = REQUIRED_GROUPS) -> list[str]:
        return [i for i, item in self.items.items() if required(item, groups) and not self.tests.get(i)]


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


def _mark_ids(decorator: ast.expr) -> list[str]:
    """IDs of a `pytest.mark.pattern("A01", "B02")` expression, else []."""
    if not isinstance(decorator, ast.Call):
        return []
    func = decorator.func
    if isinstance(func, ast.Attribute) and func.attr == "pattern":
        return [a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return []


def _visit(nodes: list[ast.stmt], prefix: str, inherited: list[str], out: dict[str, list[str]]) -> None:
    """Add `prefix + test name` under each ID marked on it (or on its class/module)."""
    for node in nodes:
        if isinstance(node, ast.ClassDef):
            ids = inherited + [i for d in node.decorator_list for i in _mark_ids(d)]
            _visit(node.body, f"{prefix}{node.name}::", ids, out)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            ids = inherited + [i for d in node.decorator_list for i in _mark_ids(d)]
            for item_id in dict.fromkeys(ids):
                out.setdefault(item_id, []).append(f"{prefix}{node.name}")


def collect_marks(tests_dir: Path | None = None) -> dict[str, list[str]]:
    """id -> test node ids, from decorators on test functions and classes, and `pytestmark`."""
    found: dict[str, list[str]] = {}
    base = tests_dir or ROOT / "tests"
    for path in sorted(base.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(ROOT).as_posix()
        module_ids = [
            i
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
            for expr in (node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value])
            for i in _mark_ids(expr)
        ]
        _visit(tree.body, f"{rel}::", module_ids, found)
    return found


def coverage() -> Coverage:
    items = load_catalogue()
    marks = collect_marks()
    return Coverage(
        items=items,
        tests={i: marks.get(i, []) for i in items},
        unknown={i: tests for i, tests in marks.items() if i not in items},
    )
