"""The guide builds strictly, and every link and anchor of the built site resolves.

`mkdocs build --strict` fails on a missing snippet file or section, a broken link or anchor
between pages, a page missing from the nav, and the hooks' own warnings (a pattern ID that is
not in the catalogue, a `[[tests ID]]` with no test). lychee then checks the HTML it produced,
offline: every link and `#fragment`, including the ones the theme and the hooks wrote.
"""

from __future__ import annotations

import html as html_module
import re
import subprocess
from pathlib import Path

from devtools.docs_source import MARKER, page_includes
from devtools.patterns import load_catalogue
from tests.support import ROOT, BuiltSite

LYCHEE = [
    str(ROOT / "venv" / "bin" / "lychee"),
    "--offline",
    "--no-progress",
    "--include-fragments",
    "--index-files",
    "index.html",
]


def _text(path: Path) -> str:
    return html_module.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_strict_build_includes_the_live_code(built_site: BuiltSite) -> None:
    index = _text(built_site.site / "index.html")
    # a snippet of example_app/ was included
    assert "async def health(db: SessionDep, settings: SettingsDep)" in index
    for page in built_site.site.rglob("*.html"):
        assert "--8<--" not in page.read_text(encoding="utf-8"), page  # no include left unexpanded
        assert "[[tests" not in page.read_text(encoding="utf-8"), page


def test_pattern_index_has_a_row_per_catalogue_item(built_site: BuiltSite) -> None:
    html = (built_site.site / "pattern-index" / "index.html").read_text(encoding="utf-8")
    rows = re.findall(r'<span id="([A-Z]{1,2}\d{2})"></span>', html)
    assert rows == list(load_catalogue())


def test_every_included_file_has_a_full_file_page(built_site: BuiltSite) -> None:
    files = {inc.path for includes in page_includes().values() for inc in includes}
    assert files
    for path in files:
        page = built_site.site / "source" / path / "index.html"
        assert page.exists(), path
        body = _text(page)
        lines = (ROOT / path).read_text().splitlines()  # section markers are never shown
        first_line = next(line for line in lines if line.strip() and not MARKER.search(line))
        assert first_line.strip() in body


def bare_ids(html: str, known: set[str]) -> list[str]:
    """Pattern IDs in a page's article text that are not links: code, links, headings and the
    page's title left out."""
    article = html[html.find("<article") : html.find("</article>")]
    article = re.sub(r"<(pre|code|a|h[1-6]|title|svg|script)\b.*?</\1>", "", article, flags=re.DOTALL)
    text = html_module.unescape(re.sub(r"<[^>]+>", " ", article))
    return [m for m in re.findall(r"(?<![\w#/.-])([A-Z]{1,2}\d{2})(?![\w-])", text) if m in known]


def test_pattern_ids_in_the_text_are_links_to_the_pattern_index(built_site: BuiltSite) -> None:
    known = set(load_catalogue())
    found = {
        page.relative_to(built_site.site).as_posix(): ids
        for page in built_site.site.rglob("index.html")
        if not {"source", "pattern-index"} & set(page.parts)
        and (ids := bare_ids(page.read_text(encoding="utf-8"), known))
    }
    assert found == {}
    hardening = (built_site.site / "hardening" / "index.html").read_text(encoding="utf-8")
    assert '<a class="pattern-id" href="../pattern-index/#E07">E07</a>' in hardening  # named in its text


def test_the_bare_id_check_finds_an_unlinked_id() -> None:
    html = '<article><p>See E16 below, <a href="x">E07</a> and <code>E01</code>; ZZ99.</p></article>'
    assert bare_ids(html, {"E16", "E07", "E01"}) == ["E16"]


def _lychee(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LYCHEE, "--root-dir", str(root), f"{root}/**/*.html"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_link_and_anchor_of_the_built_site_resolves(built_site: BuiltSite) -> None:
    result = _lychee(built_site.www)
    assert result.returncode == 0, result.stdout + result.stderr
    checked = re.search(r"(\d+) OK", result.stdout + result.stderr)
    assert checked is not None
    assert int(checked[1]) > 500  # it really looked at the site's links


def test_the_link_check_catches_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text('<h1 id="here">A</h1><a href="../b/">b</a>')
    links = '<a href="a/#here">ok</a> <a href="a/#gone">bad anchor</a> <a href="c/">bad page</a>'
    (tmp_path / "index.html").write_text(links)
    result = _lychee(tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "#gone" in output
    assert "/b" in output
    assert "/c" in output
    assert "#here" not in output


def test_pages_workflow_builds_strictly_checks_links_and_deploys_main() -> None:
    workflow = (ROOT / ".github" / "workflows" / "docs.yml").read_text()
    assert "mkdocs build --strict" in workflow
    assert " ".join(["lychee", *LYCHEE[1:]]) in workflow
    deploy = workflow[workflow.index("\n  deploy:") :]
    assert "github.ref == 'refs/heads/main'" in deploy
    assert "uses: actions/deploy-pages@" in deploy
