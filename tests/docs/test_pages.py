"""What the pages say must match the repository: the pattern coverage and the project tree."""

from __future__ import annotations

import re
import subprocess

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
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    top_level = {line.split("/")[0] for line in tracked.stdout.splitlines()}
    assert sorted(top_level - shown) == []  # every file and folder at the top of the repository
    packages = [p.parent for p in (ROOT / "tests").glob("*/__init__.py")]
    helpers = [p for p in (ROOT / "tests").glob("[!_]*.py") if not p.name.startswith("test_")]
    tooling = [p for p in (ROOT / "devtools").glob("[!_]*") if p.suffix in {".py", ".md"}]
    listed = {p.relative_to(ROOT).as_posix() for p in [*packages, *helpers, *tooling]}
    assert sorted(listed - shown) == []  # every test package and helper, every devtools module


def test_the_tree_parser_reads_nesting() -> None:
    tree = "\n".join([".", "├── a/", "│   ├── b.py      note", "│   └── c/", "│       └── d.py", "└── e.txt"])
    assert tree_paths(tree) == ["a", "a/b.py", "a/c", "a/c/d.py", "e.txt"]
