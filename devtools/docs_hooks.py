"""MkDocs hooks of the guide (`hooks:` in mkdocs.yml).

- The pattern index page is generated from PATTERNS.md, the pages' tagged headings
  (`## Title { #anchor data-patterns="D05 D06" }`) and the tests' `pytest.mark.pattern` marks.
- Every file that a page includes code from gets a generated full-file page under `source/`,
  and the title of each included code block links to it (the imports are there).
- `[[tests E05]]` on a page becomes the list of tests that carry that mark.
- Code annotations follow the code: an ordered list right after an included Python block whose
  items start with inline code (`` `pool_pre_ping=True` ...``) puts marker N on the one line of
  the block that contains that code. If the code changes and the line is gone, the build fails.
- Each chart of `devtools/charts.py` is drawn as SVG from its recorded JSON into the site (e.g.
  `assets/charts/ml_serving.svg`), and `[[figure <record> <name>]]` in a page's prose becomes
  that figure of the recorded run: a figure can never disagree with the run it comes from.
"""

from __future__ import annotations

import logging
import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, is_token_subtype
from pygments.util import ClassNotFound

if __package__ in (None, ""):  # loaded by file path: make `devtools` importable from a bare clone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.charts import CHARTS, figure
from devtools.docs_source import (
    ATTR_ID,
    ATTR_PATTERNS,
    FENCE_OPEN,
    HEADING,
    Include,
    closing_fence,
    iter_fences,
    outside_fences,
    pages,
)
from devtools.patterns import Coverage, catalogue_path, coverage

log = logging.getLogger("mkdocs.plugins.guide")

INDEX_PAGE = "pattern-index.md"
SOURCE_DIR = "source"
TESTS_TOKEN = re.compile(r"\[\[tests (?P<id>[A-Z]{1,2}\d{2})\]\]")
FIGURE_TOKEN = re.compile(r"\[\[figure (?P<record>\w+) (?P<name>\w+)\]\]")
GROUP_HEADING = re.compile(r"^## (?P<group>[A-Z]{1,2}): (?P<title>.+)$")
LANGUAGES = {".py": "python", ".ini": "ini", ".mako": "mako", ".toml": "toml", ".md": "markdown"}


# --- what the pages say about patterns -------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """A heading that explains some pattern items, and the code included under it."""

    page: str
    anchor: str | None  # None for the page's title
    title: str
    ids: tuple[str, ...]
    includes: tuple[Include, ...]


def page_title(text: str, page: str) -> str:
    for _, line in outside_fences(text):
        if (match := HEADING.match(line)) and len(match["hashes"]) == 1:
            return match["title"].strip("` ")
    return page


CORRECTION = re.compile(r'^(?P<indent>[ \t]*)!!! correction "Correction \((?P<id>E\d{2})\)')


def _corrections(page: str, text: str, headings: list[tuple[int, re.Match[str]]]) -> list[Tag]:
    """Each `!!! correction "Correction (E05): ..."` box, under the nearest heading before it."""
    lines = text.splitlines()
    fences = list(iter_fences(text, page))
    tags = []
    for index, line in outside_fences(text):
        if not (match := CORRECTION.match(line)):
            continue
        body_indent = len(match["indent"]) + 4
        end = index + 1
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= body_indent
        ):
            end += 1
        above = [m for i, m in headings if i < index]
        anchor = None
        if above and above[-1]["attrs"] and (found := ATTR_ID.search(above[-1]["attrs"])):
            anchor = found["id"]
        includes = tuple(inc for fence in fences if index < fence.line - 1 < end for inc in fence.includes)
        if not includes and above:  # a box that shows no code of its own: its section's code
            start = next(i for i, m in reversed(headings) if i < index)
            level = len(above[-1]["hashes"])
            stop = next((i for i, m in headings if i > start and len(m["hashes"]) <= level), len(lines))
            includes = tuple(
                inc for fence in fences if start < fence.line - 1 < stop for inc in fence.includes
            )
        title = above[-1]["title"].strip() if above and anchor else ""
        tags.append(Tag(page, anchor, title, (match["id"],), includes))
    return tags


def tags_of(page: str, text: str) -> list[Tag]:
    headings = [(i, m) for i, line in outside_fences(text) if (m := HEADING.match(line))]
    fences = list(iter_fences(text, page))
    tags = _corrections(page, text, headings)
    for n, (index, match) in enumerate(headings):
        attrs = match["attrs"] or ""
        if not (ids_match := ATTR_PATTERNS.search(attrs)):
            continue
        # A section runs to the next heading of its level or above; a page title's, to the first h2.
        level = max(len(match["hashes"]), 2)
        end = next((i for i, m in headings[n + 1 :] if len(m["hashes"]) <= level), len(text.splitlines()))
        anchor = m["id"] if (m := ATTR_ID.search(attrs)) else None
        if anchor is None and len(match["hashes"]) > 1:
            raise PluginError(f"{page}: heading {match['title']!r} has data-patterns but no {{ #anchor }}")
        includes = tuple(inc for fence in fences if index < fence.line - 1 < end for inc in fence.includes)
        tags.append(Tag(page, anchor, match["title"].strip(), tuple(ids_match["ids"].split()), includes))
    return tags


@dataclass
class Guide:
    """Everything the hooks need, read once per build."""

    texts: dict[str, str]
    titles: dict[str, str]
    tags: list[Tag]
    coverage: Coverage
    sources: dict[str, list[tuple[str, Include]]] = field(default_factory=dict)  # file -> (page, include)

    @classmethod
    def read(cls, docs: Path) -> Guide:
        texts = pages(docs)
        guide = cls(
            texts=texts,
            titles={page: page_title(text, page) for page, text in texts.items()},
            tags=[tag for page, text in texts.items() for tag in tags_of(page, text)],
            coverage=coverage(),
        )
        for page, text in texts.items():
            for fence in iter_fences(text, page):
                for inc in fence.includes:
                    guide.sources.setdefault(inc.path, []).append((page, inc))
        return guide


_guide: Guide | None = None


def source_page(path: str) -> str:
    return f"{SOURCE_DIR}/{path}.md"


def link(from_page: str, to_page: str, anchor: str | None = None) -> str:
    rel = posixpath.relpath(to_page, posixpath.dirname(from_page) or ".")
    return f"{rel}#{anchor}" if anchor else rel


# --- generated pages ---------------------------------------------------------------------------------


def index_markdown(guide: Guide) -> str:
    cov = guide.coverage
    group_titles = {
        m["group"]: m["title"]
        for line in catalogue_path().read_text(encoding="utf-8").splitlines()
        if (m := GROUP_HEADING.match(line))
    }
    by_id: dict[str, list[Tag]] = {}
    for tag in guide.tags:
        for item_id in tag.ids:
            by_id.setdefault(item_id, []).append(tag)
    out = [
        "# Pattern index",
        "",
        "Every item of the pattern catalogue, where the guide explains it, the code it shows for it, "
        "and the tests that prove it on PostgreSQL. This page is generated when the site is built, "
        "from the catalogue, the pages' headings and the tests' `@pytest.mark.pattern(...)` marks, "
        "so it cannot fall behind the code.",
        "",
    ]
    current_group = None
    for item_id, item in cov.items.items():
        if item.group != current_group:
            current_group = item.group
            out += [
                "",
                f"## {item.group}: {group_titles.get(item.group, item.group).capitalize()} "
                f"{{ #group-{item.group.lower()} }}",
                "",
                "| ID | Pattern | Explained in | Code | Tests |",
                "|---|---|---|---|---|",
            ]
        tags = by_id.get(item_id, [])
        explained = "<br>".join(
            f"[{guide.titles[t.page]}{': ' + t.title if t.anchor else ''}]"
            f"({link(INDEX_PAGE, t.page, t.anchor)})"
            for t in tags
        )
        code = "<br>".join(
            f"[`{inc.ref}`]({link(INDEX_PAGE, source_page(inc.path))})"
            for inc in dict.fromkeys(inc for t in tags for inc in t.includes)
        )
        tests = "<br>".join(f"`{t}`" for t in guide.coverage.tests.get(item_id, []))
        cells = [f'<span id="{item_id}"></span>**{item_id}**', item.text, explained, code, tests]
        out.append("| " + " | ".join(c or "—" for c in cells) + " |")
    unknown = sorted({i for t in guide.tags for i in t.ids} - set(cov.items))
    for item_id in unknown:
        pages_ = ", ".join(sorted({t.page for t in by_id[item_id]}))
        log.warning(f"data-patterns names {item_id}, which is not in the pattern catalogue ({pages_})")
    return "\n".join(out) + "\n"


def source_markdown(guide: Guide, path: str) -> str:
    here = source_page(path)
    shown = []
    for page, inc in guide.sources[path]:
        where = f"[{guide.titles[page]}]({link(here, page)})"
        entry = f"- `{inc.section}` on {where}" if inc.section else f"- the whole file on {where}"
        if entry not in shown:
            shown.append(entry)
    lang = LANGUAGES.get(Path(path).suffix, "text")
    return "\n".join(
        [
            "---",
            "search:",
            "  exclude: true",
            "---",
            "",
            f"# `{path}`",
            "",
            "The whole file, as the tests run it. The guide shows these parts of it:",
            "",
            *shown,
            "",
            f'```{lang} title="{path}"',
            f'--8<-- "{path}"',
            "```",
            "",
        ]
    )


def on_files(files: Files, config: MkDocsConfig) -> Files:
    global _guide
    _guide = guide = Guide.read(Path(config.docs_dir))
    files.append(File.generated(config, INDEX_PAGE, content=index_markdown(guide)))
    for path in sorted(guide.sources):
        files.append(File.generated(config, source_page(path), content=source_markdown(guide, path)))
    for chart in chart_files(config):
        files.append(chart)
    return files


def chart_files(config: MkDocsConfig) -> list[File]:
    """The benchmark charts (devtools/charts.py), drawn from the recorded JSON at every build."""
    root = Path(config.config_file_path).resolve().parent
    found = []
    for chart in CHARTS:
        try:
            svg = chart.svg(root)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PluginError(
                f"chart {chart.target}: cannot draw it from bench/results/{chart.source}.json "
                f"({type(exc).__name__}: {exc}); rerun the benchmark with --record"
            ) from None
        found.append(File.generated(config, chart.target, content=svg))
    return found


# --- page Markdown -------------------------------------------------------------------------------


def with_titles(markdown: str) -> str:
    """Give each include block a title naming its file (the title links to the full file)."""
    lines = markdown.splitlines()
    for fence in iter_fences(markdown):
        includes = fence.includes
        if len(includes) == 1 and "title=" not in fence.info:
            index = fence.line - 1
            lines[index] = f'{lines[index].rstrip()} title="{includes[0].path}"'
    return "\n".join(lines) + "\n"


def with_tests(markdown: str, page: str, guide: Guide) -> str:
    def tests(match: re.Match[str]) -> str:
        found = guide.coverage.tests.get(match["id"], [])
        if not found:
            log.warning(f"{page}: no test carries the mark {match['id']}")
            return "—"
        return "<br>".join(f"`{t}`" for t in found)

    return TESTS_TOKEN.sub(tests, markdown)


def id_link(page: str, item_id: str) -> str:
    """A pattern ID as a small link to its row of the pattern index."""
    return f"[{item_id}]({link(page, INDEX_PAGE, item_id)}){{ .pattern-id }}"


def with_pattern_links(markdown: str, page: str) -> str:
    """Under each tagged heading, a line linking its pattern IDs to the index."""
    lines = markdown.splitlines()
    for index, line in reversed(list(outside_fences(markdown))):
        match = HEADING.match(line)
        if match and match["attrs"] and (ids := ATTR_PATTERNS.search(match["attrs"])):
            links = " ".join(id_link(page, i) for i in ids["ids"].split())
            lines[index + 1 : index + 1] = ["", f"Patterns: {links}", "{ .pattern-ids }"]
    return "\n".join(lines) + "\n"


BARE_ID = re.compile(r"(?<![\w#/.-])(?P<id>[A-Z]{1,2}\d{2})(?![\w-])")
# What a bare ID in it is not prose: inline code, a link (its text and target), an HTML tag,
# an attribute list, a `[[...]]` token.
NOT_PROSE = re.compile(r"`[^`]*`|\[[^\]]*\]\([^)]*\)(?:\{[^}]*\})?|<[^>]*>|\{[^}]*\}|\[\[[^\]]*\]\]")


def with_id_links(markdown: str, page: str, known: set[str]) -> str:
    """A pattern ID named in the prose (`see E16 below`) becomes a small link to the index.

    Headings (their IDs are linked under them), includes and code are left as they are; so is
    anything that is not an item of the catalogue. An admonition's title is text too.
    """
    lines = markdown.splitlines()

    def linked(text: str) -> str:
        return BARE_ID.sub(lambda m: id_link(page, m["id"]) if m["id"] in known else m[0], text)

    for index, line in outside_fences(markdown):
        stripped = line.lstrip()
        if stripped.startswith(("#", "--8<--")) or not BARE_ID.search(line):
            continue
        if stripped.startswith(("!!!", "???")):  # an admonition: only its quoted title is text
            if title := re.search(r'"(?P<title>[^"]*)"', line):
                start, end = title.span("title")
                lines[index] = line[:start] + linked(title["title"]) + line[end:]
            continue
        out, last = [], 0
        for match in NOT_PROSE.finditer(line):
            out += [linked(line[last : match.start()]), match[0]]
            last = match.end()
        lines[index] = "".join([*out, linked(line[last:])])
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    assert _guide is not None
    src = page.file.src_uri
    if src == INDEX_PAGE:
        return markdown
    markdown = with_titles(markdown)
    if src.startswith(f"{SOURCE_DIR}/"):
        return markdown
    root = Path(config.config_file_path).resolve().parent
    markdown = with_tests(with_figures(markdown, src, root), src, _guide)
    return with_pattern_links(with_id_links(markdown, src, set(_guide.coverage.items)), src)


def with_figures(markdown: str, page: str, root: Path) -> str:
    """`[[figure <record> <name>]]`: that figure of bench/results/<record>.json (devtools/charts.py)."""

    def value(match: re.Match[str]) -> str:
        try:
            return figure(root, match["record"], match["name"])
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
            raise PluginError(f"{page}: {match[0]}: {type(exc).__name__}: {exc}") from None

    return FIGURE_TOKEN.sub(value, markdown)


# --- page HTML ---------------------------------------------------------------------------------------

FILENAME = re.compile(r'<span class="filename">(?P<path>[^<]+)</span>')


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri.startswith(f"{SOURCE_DIR}/"):
        return html

    def linked(match: re.Match[str]) -> str:
        target = files.get_file_from_path(source_page(match["path"]))
        if target is None:
            return match[0]
        href = get_relative_url(target.url, page.url)
        return f'<span class="filename"><a href="{href}" title="The whole file">{match["path"]}</a></span>'

    return FILENAME.sub(linked, html)


# --- code annotations on included code ------------------------------------------------------------

ITEM = re.compile(r"^(?P<indent>[ \t]*)\d+\.[ \t]+(?P<rest>.*)$")
LEADING_CODE = re.compile(r"^`(?P<code>[^`]+)`")


def comment_lines(code: str, lang: str) -> set[int]:
    """0-based numbers of the lines that end in a comment."""
    try:
        lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return set()
    found, line = set(), 0
    for token, value in lexer.get_tokens(code):
        if is_token_subtype(token, Comment):
            found.add(line)
        line += value.count("\n")
    return found


def annotate(lines: list[str]) -> list[str]:
    """Put `(N)` markers on the lines named by the annotation list after each code block."""
    out = list(lines)
    i = 0
    while i < len(out):
        opening = FENCE_OPEN.match(out[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        lang = (opening["info"].split() or [""])[0].lstrip(".").lower()
        closing = closing_fence(indent, fence)
        end = next((j for j in range(i + 1, len(out)) if closing.match(out[j])), len(out))
        items = _annotation_items(out, end + 1, indent)
        if items:
            _mark(out, i + 1, end, lang, items)
        i = end + 1
    return out


def _annotation_items(lines: list[str], start: int, indent: str) -> list[str]:
    """The leading inline code of each item of an ordered list that follows a block."""
    k = start
    while k < len(lines) and not lines[k].strip():
        k += 1
    codes: list[str] = []
    while k < len(lines):
        line = lines[k]
        item = ITEM.match(line)
        if item and item["indent"] == indent:
            code = LEADING_CODE.match(item["rest"])
            if code is None:
                if not codes:
                    return []  # an ordinary list, not annotations
                raise PluginError(f"annotation item without leading inline code: {line.strip()!r}")
            codes.append(code["code"])
        elif line.strip() and not line.startswith(indent + " ") and not line.startswith(indent + "\t"):
            break
        k += 1
    return codes


def _mark(lines: list[str], first: int, end: int, lang: str, codes: list[str]) -> None:
    body = lines[first:end]
    commented = comment_lines("\n".join(body), lang)
    for number, code in enumerate(codes, start=1):
        hits = [n for n, line in enumerate(body) if code in line]
        if len(hits) != 1:
            context = body[0].strip() if body else ""
            raise PluginError(
                f"annotation ({number}) `{code}` matches {len(hits)} lines of the code block "
                f"starting {context!r}; it must match exactly one (did the code change?)"
            )
        n = hits[0]
        # On a line with a comment the marker joins the comment; elsewhere it is a comment of its
        # own that Material replaces by the marker. Either way the copied text is the source line.
        if n not in commented and n not in comment_lines("\n".join([*body[:n], body[n] + "# x"]), lang):
            # Inside a string (SQL in a Python literal): the marker would be text, and copied.
            raise PluginError(f"annotation ({number}) `{code}` is on a line inside a string; say it in prose")
        lines[first + n] += f"({number})" if n in commented else f"# ({number})!"


class _AnnotatePreprocessor(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return annotate(lines)


class AnnotateIncludedCode(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 (Markdown's API)
        # After pymdownx.snippets (32) has inlined the code, before superfences (25) reads blocks.
        md.preprocessors.register(_AnnotatePreprocessor(md), "guide_annotations", 30)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    config.markdown_extensions.append(AnnotateIncludedCode())  # type: ignore[arg-type]
    return config
