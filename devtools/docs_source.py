"""How the guide's pages and the project's code refer to each other.

Pages show code only through pymdownx.snippets includes of named sections:

    --8<-- "example_app/core/database.py:engine"

and a code file names a section with a pair of comment lines, `# --8<-- [start:<name>]` and the
matching `end`. This module parses both sides, without a MkDocs build, so that the build hook
(`devtools/docs_hooks.py`), the fence policy test and the browser test read them the same way.
What an include puts on a page comes from pymdownx.snippets itself, configured from mkdocs.yml.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markdown
from markdown.preprocessors import Preprocessor
from mkdocs.utils.yaml import yaml_load
from pymdownx.snippets import SnippetMissingError, SnippetPreprocessor  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = "pymdownx.snippets"
# Where included code may come from, and which files are searched for section markers.
CODE_ROOTS = (
    "example_app",
    "alembic",
    "tests",
    "devtools",
    "bench",
    "deploy",
    "tasks.py",
    ".ci",
    "alembic.ini",
    "Dockerfile",
)
CODE_SUFFIXES = {".py", ".ini", ".toml", ".mako", ".txt", ".sh", ".yaml", ""}

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
# The only include form the guide uses: a block-level snippet of a file or of one named section.
INCLUDE = re.compile(
    r'^[ \t]*-{1,}8<-{1,}[ \t]+"(?P<path>[^":\n]+)(?::(?P<section>[a-z][-_0-9a-z]*))?"[ \t]*$'
)
# A section marker, as pymdownx.snippets reads it (groups `type`, `name`; `escape` when escaped).
MARKER: re.Pattern[str] = SnippetPreprocessor.RE_SNIPPET_SECTION
HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.*?)[ \t]*(?:\{(?P<attrs>[^{}]*)\})?[ \t]*$")
ATTR_ID = re.compile(r"(?:^|\s)#(?P<id>[-\w]+)")
ATTR_PATTERNS = re.compile(r'data-patterns="(?P<ids>[^"]*)"')


@dataclass(frozen=True)
class Include:
    path: str  # relative to the project root
    section: str | None  # None: the whole file

    @property
    def ref(self) -> str:
        return f"{self.path}:{self.section}" if self.section else self.path


@dataclass
class Fence:
    page: str  # path relative to docs/
    line: int  # 1-based line of the opening fence
    indent: str
    lang: str
    info: str
    body: list[str] = field(default_factory=list)  # without the fence's indentation

    @property
    def includes(self) -> list[Include]:
        return [Include(m["path"], m["section"]) for line in self.body if (m := INCLUDE.match(line))]


def closing_fence(indent: str, fence: str) -> re.Pattern[str]:
    """The line that closes a block opened with `fence` at `indent`."""
    return re.compile(rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")


def iter_fences(text: str, page: str = "") -> Iterator[Fence]:
    """Fenced code blocks of a Markdown page, also inside admonitions, tabs and lists."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE_OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        lang = info.split()[0].lstrip(".").lower() if info else ""
        block = Fence(page, i + 1, indent, lang, info)
        closing = closing_fence(indent, fence)
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            block.body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1  # the closing fence (or the end of the page)
        yield block


def outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """(0-based index, line) of the lines of a page that are not inside a fenced block."""
    lines = text.splitlines()
    inside: re.Pattern[str] | None = None
    for index, line in enumerate(lines):
        if inside is not None:
            if inside.match(line):
                inside = None
            continue
        if match := FENCE_OPEN.match(line):
            inside = closing_fence(match["indent"], match["fence"])
            continue
        yield index, line


def pages(docs: Path = DOCS) -> dict[str, str]:
    """Every Markdown page of the guide: path relative to docs/ -> text."""
    return {p.relative_to(docs).as_posix(): p.read_text(encoding="utf-8") for p in sorted(docs.rglob("*.md"))}


# --- the code side --------------------------------------------------------------------------------


@dataclass
class Markers:
    """The section markers of one code file."""

    path: str
    starts: dict[str, list[int]] = field(default_factory=dict)  # name -> 1-based lines
    ends: dict[str, list[int]] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        for name in sorted(set(self.starts) | set(self.ends)):
            starts, ends = self.starts.get(name, []), self.ends.get(name, [])
            where = f"{self.path}: section {name!r}"
            if len(starts) != 1 or len(ends) != 1:
                found.append(f"{where} has {len(starts)} start and {len(ends)} end markers (need one each)")
            elif ends[0] < starts[0]:
                found.append(f"{where} ends (line {ends[0]}) before it starts (line {starts[0]})")
        return found


def markers_of(path: str, text: str) -> Markers:
    found = Markers(path)
    for number, line in enumerate(text.splitlines(), start=1):
        if (match := MARKER.match(line)) and not match["escape"]:  # `;--8<--` is text, not a marker
            target = found.starts if match["type"].lower() == "start" else found.ends
            target.setdefault(match["name"], []).append(number)
    return found


def code_files(root: Path = ROOT) -> list[Path]:
    files: list[Path] = []
    for name in CODE_ROOTS:
        base = root / name
        if base.is_file():
            files.append(base)
        elif base.is_dir():
            files += [
                p
                for p in sorted(base.rglob("*"))
                if p.is_file() and p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts
            ]
    return files


def all_markers(root: Path = ROOT) -> dict[str, Markers]:
    """path -> markers, for every code file that has at least one marker."""
    result = {}
    for path in code_files(root):
        rel = path.relative_to(root).as_posix()
        markers = markers_of(rel, path.read_text(encoding="utf-8", errors="replace"))
        if markers.starts or markers.ends:
            result[rel] = markers
    return result


def snippets_config(root: Path = ROOT) -> dict[str, Any]:
    """pymdownx.snippets' options in `root`/mkdocs.yml, base paths made absolute.

    MkDocs resolves base_path from the directory it runs in, which is the project root.
    """
    config = yaml_load((root / "mkdocs.yml").read_text(encoding="utf-8"))
    for extension in config.get("markdown_extensions", []):
        if isinstance(extension, dict) and SNIPPETS in extension:
            options = dict(extension[SNIPPETS] or {})
            break
    else:
        raise LookupError(f"{root / 'mkdocs.yml'} does not enable {SNIPPETS}")
    base = options.get("base_path", ["."])
    options["base_path"] = [str(root / b) for b in ([base] if isinstance(base, str) else base)]
    return options


@functools.cache
def _snippets(root: Path) -> Preprocessor:
    """The preprocessor that MkDocs' Markdown runs for includes, with the site's options."""
    md = markdown.Markdown(extensions=[SNIPPETS], extension_configs={SNIPPETS: snippets_config(root)})
    return md.preprocessors["snippet"]


def section_text(path: str, section: str | None, root: Path = ROOT) -> str:
    """What an include puts on the page: pymdownx.snippets' own expansion of the include line.

    A section is its lines with other markers dropped, dedented (`dedent_subsections`); a whole
    file is the file without its marker lines (ending with a newline when the file does). A
    missing file or section raises LookupError (`check_paths`).
    """
    include = Include(path, section)
    try:
        lines = _snippets(root).run([f'--8<-- "{include.ref}"'])
    except SnippetMissingError as error:
        raise LookupError(f"{include.ref}: {error}") from None
    return "\n".join(lines)


def page_includes(docs: Path = DOCS) -> dict[str, list[Include]]:
    """page -> includes in the order they appear (one per Python block)."""
    return {
        page: [inc for fence in iter_fences(text, page) for inc in fence.includes]
        for page, text in pages(docs).items()
    }
