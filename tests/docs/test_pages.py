"""What the pages say must match the repository: the pattern coverage and the project tree."""

from __future__ import annotations

import re

from devtools.docs_hooks import Guide
from devtools.docs_source import DOCS, iter_fences
from devtools.patterns import coverage, required
from tests.support import ROOT

TREE_LINE = re.compile(r"^(?P<prefix>(?:│   |    )*)(?:├── |└── )(?P<name>[^\s]+)")


def test_every_required_pattern_is_explained_with_code_and_tested() -> None:
    guide = Guide.read(DOCS)
    explained: dict[str, list[str]] = {}
    for tag in guide.tags:
        for item_id in tag.ids:
            explained.setdefault(item_id, []).extend(inc.ref for inc in tag.includes)
    cov = coverage()
    needed = [i for i, item in cov.items.items() if required(item)]
    assert len(needed) >= 108
    assert [i for i in needed if i not in explained] == []  # a page's heading or box names it
    assert [i for i in needed if not explained[i]] == []  # ...and shows code for it
    assert [i for i in needed if not cov.tests[i]] == []  # ...and a test carries its mark


def tree_paths(tree: str) -> list[str]:
    """The paths of a `tree`-style listing (├── name, │ indentation of four characters)."""
    paths: list[str] = []
    stack: list[str] = []
    for line in tree.splitlines():
        if not (match := TREE_LINE.match(line)):
            continue
        depth = len(match["prefix"]) // 4
        stack[depth:] = [match["name"].rstrip("/")]
        paths.append("/".join(stack))
    return paths


def test_project_structure_tree_is_the_repository() -> None:
    text = (DOCS / "project-structure.md").read_text()
    [tree] = [fence for fence in iter_fences(text) if fence.lang == "text" and fence.body[0] == "."]
    paths = tree_paths("\n".join(tree.body))
    assert len(paths) > 40
    assert [p for p in paths if not (ROOT / p).exists()] == []
    shown = set(paths)
    app_files = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "example_app").rglob("*.py")
        if p.name != "__init__.py" or p.parent.name == "models"
    ]
    assert sorted(set(app_files) - shown) == []  # every module of the app is in the tree


def test_the_tree_parser_reads_nesting() -> None:
    tree = "\n".join([".", "├── a/", "│   ├── b.py      note", "│   └── c/", "│       └── d.py", "└── e.txt"])
    assert tree_paths(tree) == ["a", "a/b.py", "a/c", "a/c/d.py", "e.txt"]
