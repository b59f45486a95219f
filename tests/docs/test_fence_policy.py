"""The guide shows only live code: the rules for code blocks on its pages.

- every fenced block names its language;
- a Python block (and any block of project code: ini, toml, mako) is exactly one include of a
  project file or of a named section of one, never hand-written code;
- an include names a file that exists and a section whose start and end markers exist once each,
  in that order; a file is included whole only when it has no markers (none hidden on the page);
- every section marker in the code is paired, and every section is shown on some page;
- a file whose only section is all of it after the imports has no markers: it is shown whole,
  imports included, so a reader copies it without marker noise;
- no other block (text, json, bash) carries Python in disguise.

Each rule is checked on the real guide, and on a small bad example to prove the check can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from devtools.docs_source import (
    CODE_ROOTS,
    INCLUDE,
    Markers,
    all_markers,
    iter_fences,
    markers_of,
    pages,
)
from tests.support import ROOT

CODE_LANGS = {"python", "py", "python3", "pycon", "ini", "toml", "mako", "yaml", "dockerfile", "sh"}
OTHER_LANGS = {"bash", "text", "json", "http", "console", "mermaid"}  # mermaid: a diagram
# Lines that are Python, whatever the block claims to be.
LOOKS_LIKE_PYTHON = re.compile(
    r"^\s*(async\s+def\s|def\s+\w+\(|class\s+\w+.*:\s*$|from\s+[\w.]+\s+import\s|import\s+\w|@\w+[.(])"
)
# Built from parts so that this file holds no marker or include the scanners would find.
SCISSORS = "--8<" + "--"


def fence_problems(texts: dict[str, str]) -> list[str]:
    problems = []
    for page, text in texts.items():
        for fence in iter_fences(text, page):
            where = f"{page}:{fence.line}"
            lines = [line for line in fence.body if line.strip()]
            includes = fence.includes
            if not fence.lang:
                problems.append(f"{where}: a code block without a language")
            elif fence.lang in CODE_LANGS or includes:
                if len(lines) != 1 or len(includes) != 1:
                    problems.append(
                        f"{where}: a {fence.lang} block must be exactly one include, not written code"
                    )
            elif fence.lang not in OTHER_LANGS:
                problems.append(f"{where}: unknown block language {fence.lang!r}")
            elif any(LOOKS_LIKE_PYTHON.match(line) for line in lines):
                problems.append(f"{where}: Python in a {fence.lang} block; include it from a tested file")
    return problems


def include_problems(texts: dict[str, str], markers: dict[str, Markers], root: Path) -> list[str]:
    problems = []
    for page, text in texts.items():
        for fence in iter_fences(text, page):
            for include in fence.includes:
                where = f"{page}:{fence.line}: {include.ref}"
                if not include.path.startswith(CODE_ROOTS) or not (root / include.path).is_file():
                    problems.append(f"{where}: no such project file")
                    continue
                found = markers.get(include.path, Markers(include.path))
                if include.section is None:
                    if found.starts or found.ends:
                        problems.append(f"{where}: the file has named sections; include one of them")
                    continue
                starts, ends = found.starts.get(include.section, []), found.ends.get(include.section, [])
                if len(starts) != 1 or len(ends) != 1:
                    problems.append(
                        f"{where}: {len(starts)} start and {len(ends)} end markers (need one each)"
                    )
                elif ends[0] < starts[0]:
                    problems.append(f"{where}: the end marker comes before the start marker")
    return problems


def whole_file_section(found: Markers, code: str) -> str | None:
    """The name of a Python file's only section when nothing but imports lies outside it."""
    if not found.path.endswith(".py") or len(found.starts) != 1 or found.problems():
        return None
    (name,) = found.starts
    start, end = found.starts[name][0], found.ends[name][0]
    body = ast.parse(code).body
    if body and isinstance(body[0], ast.Expr):  # the module docstring
        body = body[1:]
    outside = [
        node
        for node in body
        if not isinstance(node, ast.Import | ast.ImportFrom | ast.If)  # `if TYPE_CHECKING:` too
        and not (start < node.lineno and (node.end_lineno or node.lineno) < end)
    ]
    return None if outside else name


def marker_problems(texts: dict[str, str], markers: dict[str, Markers], root: Path = ROOT) -> list[str]:
    used = {
        (inc.path, inc.section)
        for page, text in texts.items()
        for f in iter_fences(text, page)
        for inc in f.includes
    }
    problems = [p for m in markers.values() for p in m.problems()]
    for path, found in markers.items():
        if (name := whole_file_section(found, (root / path).read_text(encoding="utf-8"))) is not None:
            problems.append(
                f"{path}: section {name!r} is the whole file after its imports; drop the markers "
                "and include the file"
            )
    for path, found in markers.items():
        for name in sorted(set(found.starts) | set(found.ends)):
            if (path, name) not in used:
                problems.append(
                    f"{path}: section {name!r} is shown on no page (remove its markers or include it)"
                )
    return problems


# --- the real guide -----------------------------------------------------------------------------------


def test_every_code_block_on_the_pages_is_live_code() -> None:
    assert fence_problems(pages()) == []


def test_every_include_names_an_existing_section() -> None:
    assert include_problems(pages(), all_markers(), ROOT) == []


def test_every_marker_is_paired_and_used() -> None:
    assert marker_problems(pages(), all_markers()) == []


# --- the checks can fail --------------------------------------------------------------------------


def _page(*body: str, lang: str = "python") -> dict[str, str]:
    return {"bad.md": "\n".join(["# Bad", "", f"```{lang}", *body, "```", ""])}


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (_page("from app import x", "x()"), "must be exactly one include"),
        (_page(f'{SCISSORS} "example_app/main.py:app"', "print(1)"), "must be exactly one include"),
        (_page("async def handler(): ...", lang="text"), "Python in a text block"),
        (_page("SELECT 1", lang=""), "without a language"),
        (_page("SELECT 1", lang="sql"), "unknown block language"),
        ({"tabs.md": '=== "Tab"\n\n    ```python\n    import os\n    ```\n'}, "must be exactly one include"),
    ],
)
def test_hand_written_code_is_refused(page: dict[str, str], message: str) -> None:
    problems = fence_problems(page)
    assert len(problems) == 1
    assert message in problems[0]


def test_an_include_without_its_markers_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "example_app" / "thing.py"
    code.parent.mkdir()
    code.write_text(f"# {SCISSORS} [start:only_start]\nx = 1\n# {SCISSORS} [end:backwards]\n")
    code.write_text(code.read_text() + f"# {SCISSORS} [start:backwards]\n")
    markers = {"example_app/thing.py": markers_of("example_app/thing.py", code.read_text())}
    texts = _page(f'{SCISSORS} "example_app/thing.py:only_start"')
    texts |= {"two.md": _page(f'{SCISSORS} "example_app/thing.py:missing"')["bad.md"]}
    texts |= {"three.md": _page(f'{SCISSORS} "example_app/thing.py:backwards"')["bad.md"]}
    texts |= {"four.md": _page(f'{SCISSORS} "example_app/nothing.py:x"')["bad.md"]}
    problems = include_problems(texts, markers, tmp_path)
    assert len(problems) == 4, problems
    assert "1 start and 0 end markers" in problems[0]
    assert "0 start and 0 end markers" in problems[1]
    assert "end marker comes before the start marker" in problems[2]
    assert "no such project file" in problems[3]


def test_a_whole_file_include_of_a_file_with_sections_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "example_app" / "thing.py"
    code.parent.mkdir()
    code.write_text(f"x = 1\n# {SCISSORS} [start:part]\ny = 2\n# {SCISSORS} [end:part]\n")
    markers = {"example_app/thing.py": markers_of("example_app/thing.py", code.read_text())}
    problems = include_problems(_page(f'{SCISSORS} "example_app/thing.py"'), markers, tmp_path)
    assert len(problems) == 1, problems
    assert "the file has named sections; include one of them" in problems[0]
    assert include_problems(_page(f'{SCISSORS} "example_app/thing.py:part"'), markers, tmp_path) == []


def test_a_section_that_is_the_whole_file_is_refused(tmp_path: Path) -> None:
    code = tmp_path / "example_app" / "thing.py"
    code.parent.mkdir()
    lines = ['"""Doc."""', "import os", f"# {SCISSORS} [start:all]", "x = os.sep", f"# {SCISSORS} [end:all]"]
    code.write_text("\n".join(lines) + "\n")
    markers = {"example_app/thing.py": markers_of("example_app/thing.py", code.read_text())}
    problems = marker_problems(_page(f'{SCISSORS} "example_app/thing.py:all"'), markers, tmp_path)
    assert len(problems) == 1, problems
    assert "'all' is the whole file after its imports" in problems[0]
    code.write_text("\n".join([*lines, "y = 2"]) + "\n")  # code outside the section: fine
    assert marker_problems(_page(f'{SCISSORS} "example_app/thing.py:all"'), markers, tmp_path) == []


def test_unpaired_and_unused_markers_are_refused(tmp_path: Path) -> None:
    code = "\n".join(
        [
            f"# {SCISSORS} [start:shown]",
            "a = 1",
            f"# {SCISSORS} [end:shown]",
            f"# {SCISSORS} [start:unused]",
            "b = 2",
            f"# {SCISSORS} [end:unused]",
            f"# {SCISSORS} [start:unpaired]",
        ]
    )
    (tmp_path / "example_app").mkdir()
    (tmp_path / "example_app" / "x.py").write_text(code)
    markers = {"example_app/x.py": markers_of("example_app/x.py", code)}
    problems = marker_problems(_page(f'{SCISSORS} "example_app/x.py:shown"'), markers, tmp_path)
    assert len(problems) == 3, problems
    assert "'unpaired' has 1 start and 0 end markers" in problems[0]
    assert "'unpaired' is shown on no page" in problems[1]
    assert "'unused' is shown on no page" in problems[2]


def test_the_include_syntax_is_the_one_snippets_reads() -> None:
    match = INCLUDE.match(f'    {SCISSORS} "example_app/core/database.py:engine"')
    assert match is not None
    assert (match["path"], match["section"]) == ("example_app/core/database.py", "engine")
