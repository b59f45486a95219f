"""The built guide in a real browser: Debian's headless Chromium, driven by Playwright.

The site is served on 127.0.0.1 by a thread of this process. Playwright launches /usr/bin/chromium
(or the browser Playwright itself installed, where Debian's is absent): `tasks.py test` installs one
before pytest starts (devtools/test_tools.py). The site asks for nothing beyond its own files (a
request elsewhere fails the page test).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlparse

import httpx
import pytest
from playwright.async_api import Browser as AsyncBrowser
from playwright.async_api import async_playwright
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from devtools.docs_source import Include, page_includes, pages, section_text
from devtools.patterns import load_catalogue
from devtools.test_tools import chromium_executable
from tests.support import ROOT, BuiltSite, alembic_config, served_app

pytestmark = pytest.mark.system("a browser (Chromium) on the built site")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    assert executable, "no Chromium: python3 tasks.py test installs it (see devtools/test_tools.py)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _new_context(browser: Browser, site_url: str) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    origin = "{0.scheme}://{0.netloc}".format(urlparse(site_url))
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def context(browser: Browser, site_url: str) -> Iterator[BrowserContext]:
    context = _new_context(browser, site_url)
    try:
        yield context
    finally:
        context.close()


def page_urls(built_site: BuiltSite, site_url: str) -> dict[str, str]:
    """Every HTML page of the site: path relative to the site -> URL."""
    urls = {}
    for html in sorted(built_site.site.rglob("index.html")):
        rel = html.parent.relative_to(built_site.site).as_posix()
        urls["" if rel == "." else rel + "/"] = urljoin(site_url, "" if rel == "." else rel + "/")
    return urls


def test_search_finds_the_testing_page(context: BrowserContext, site_url: str) -> None:
    page = context.new_page()
    page.goto(site_url)
    search = page.locator("input.md-search__input")
    search.click()  # the search box is in the header at this width
    search.press_sequentially("dependency_overrides")
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=10_000)
    hrefs = [
        urlparse(urljoin(page.url, h or "")).path for h in results.evaluate_all("els => els.map(e => e.href)")
    ]
    assert any(path.rstrip("/").endswith("/testing") for path in hrefs), hrefs


# For each titled (included) block, in page order: select its content tab, open its collapsed
# admonition, click the block's copy button, and keep what the copy command copied. Material's
# button uses clipboard.js: it selects a hidden textarea holding the text and runs the browser's
# copy command, whose `copy` event sees that selection. Reading it there, not back from the
# system clipboard, lets pages be visited side by side (they share one clipboard) and needs no
# polling; test_the_clipboard_gets_what_the_copy_event_saw checks the two agree.
COPY_EVERY_BLOCK = """async () => {
    const copied = [];
    let text = null;
    const grab = () => {
        const el = document.activeElement;
        text = el instanceof HTMLTextAreaElement
            ? el.value.substring(el.selectionStart, el.selectionEnd)
            : document.getSelection().toString();
    };
    document.addEventListener('copy', grab);
    for (const block of document.querySelectorAll('div.highlight:has(> span.filename)')) {
        for (let el = block; el; el = el.parentElement) {
            if (el.matches('.tabbed-block')) {
                const n = [...el.parentElement.children].indexOf(el);
                el.closest('.tabbed-set').querySelectorAll(':scope > input')[n].click();
            }
            if (el.tagName === 'DETAILS') el.open = true;
        }
        text = null;
        block.querySelector("button[data-md-type='copy']").click();
        copied.push(text);
    }
    document.removeEventListener('copy', grab);
    return {titles: document.querySelectorAll('article h1').length, copied};
}"""
TABS = 2  # pages visited side by side: Chromium renders each in a process of its own


def _expected_blocks(rel: str) -> list[Include]:
    """The includes a page shows, in order: a guide page's own, or a source page's whole file."""
    if rel.startswith("source/"):
        return [Include(rel.removeprefix("source/").rstrip("/"), None)]
    for page, includes in page_includes().items():
        stem = page.removesuffix(".md")
        path = "" if stem == "index" else stem.removesuffix("/index") + "/"
        if path == rel:
            return includes
    raise LookupError(rel)


@dataclass
class Tour:
    """One visit of every page: what went wrong, and what each copy button copied."""

    pages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    copied: dict[str, str] = field(default_factory=dict)  # "page: block n (ref)" -> copied text
    expected: dict[str, str] = field(default_factory=dict)  # same keys -> the source's section


async def _visit(browser: AsyncBrowser, site_url: str, pages: list[tuple[str, str]], tour: Tour) -> None:
    """Visit `pages` (rel, url) in a tab, noting each page's problems and copies under its name."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    problems: list[str] = []
    note = problems.append
    page.on("console", lambda m: note(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: note(f"page error: {e}"))
    # A navigation cancels the previous page's late requests (net::ERR_ABORTED): not a failure.
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else note(f"fail: {r.url}"))
    page.on("request", lambda r: None if r.url.startswith(site_url) else note(f"outside the site: {r.url}"))
    page.on("response", lambda r: note(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    for rel, url in pages:
        response = await page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            note(f"HTTP {response and response.status}")
        seen = await page.evaluate(COPY_EVERY_BLOCK)
        if seen["titles"] != 1:
            note(f"{seen['titles']} page titles")
        tour.pages.append(rel)
        if rel != "pattern-index/":
            _compare_copies(rel, seen["copied"], tour, note)
        tour.problems += [f"{rel or '/'}: {p}" for p in problems]
        problems.clear()
    await page.wait_for_load_state("networkidle")  # late requests of the last page (the search index)
    tour.problems += [f"after the last page: {p}" for p in problems]
    await context.close()


async def _tour(built_site: BuiltSite, site_url: str) -> Tour:
    tour = Tour()
    urls = list(page_urls(built_site, site_url).items())
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            await asyncio.gather(*(_visit(browser, site_url, urls[n::TABS], tour) for n in range(TABS)))
        finally:
            await browser.close()
    return tour


@pytest.fixture(scope="module")
def tour(built_site: BuiltSite, site_url: str) -> Tour:
    assert chromium_executable(), "no Chromium: `python3 tasks.py test` installs it (devtools/test_tools.py)"
    with ThreadPoolExecutor(1) as thread:  # Playwright's async API, on an event loop of its own
        return thread.submit(asyncio.run, _tour(built_site, site_url)).result()


def _compare_copies(rel: str, copied: list[str | None], tour: Tour, note: Callable[[str], None]) -> None:
    """What each included block's copy button copied, against the source."""
    expected = _expected_blocks(rel)
    if len(copied) != len(expected):
        note(f"{len(copied)} titled code blocks, {len(expected)} includes")
        return
    for i, (include, text) in enumerate(zip(expected, copied, strict=True)):
        key = f"{rel or '/'}: block {i + 1} ({include.ref})"
        tour.copied[key] = "<nothing copied>" if text is None else text
        tour.expected[key] = section_text(include.path, include.section).strip("\n").rstrip()


def test_every_page_loads_without_errors_or_outside_requests(tour: Tour, built_site: BuiltSite) -> None:
    assert len(tour.pages) == len(list(built_site.site.rglob("index.html")))
    assert len(tour.pages) >= 20
    assert tour.problems == []


def test_copy_button_copies_exactly_the_named_section(tour: Tour) -> None:
    assert len(tour.copied) >= 10
    wrong = [key for key, text in tour.copied.items() if text != tour.expected[key]]
    assert wrong == []
    assert sum(1 for key in tour.copied if not key.startswith("source/")) >= 60  # the guide's own blocks


def test_the_clipboard_gets_what_the_copy_event_saw(
    context: BrowserContext, site_url: str, tour: Tour
) -> None:
    """The tour reads copies in the page; here a few go through the system clipboard as well."""
    page = context.new_page()
    page.goto(urljoin(site_url, "patterns/sessions/"), wait_until="load")
    blocks = page.locator("div.highlight:has(> span.filename)")
    assert blocks.count() >= 3
    for n in range(3):
        page.evaluate("navigator.clipboard.writeText('')")
        blocks.nth(n).scroll_into_view_if_needed()
        blocks.nth(n).hover()
        blocks.nth(n).locator("button[data-md-type='copy']").click()
        page.wait_for_function("async () => (await navigator.clipboard.readText()) !== ''")
        text = page.evaluate("navigator.clipboard.readText()")
        ref = _expected_blocks("patterns/sessions/")[n].ref
        assert text == tour.copied[f"patterns/sessions/: block {n + 1} ({ref})"]


def test_corrections_table_has_a_row_per_erratum(context: BrowserContext, site_url: str) -> None:
    page = context.new_page()
    page.goto(urljoin(site_url, "corrections/"))
    first_cells = page.locator("article table tbody tr td:first-child").all_inner_texts()
    rows = [cell.strip() for cell in first_cells if re.fullmatch(r"E\d\d", cell.strip())]
    errata = [i for i in load_catalogue() if i.startswith("E")]
    assert len(errata) == 31
    assert rows == errata


def test_the_benchmark_charts_render_with_their_alt_text(context: BrowserContext, site_url: str) -> None:
    """Every chart of devtools/charts.py, on the page that shows it: an SVG drawn, with alt text."""
    from devtools.charts import CHARTS

    shown: dict[str, tuple[str, int, int]] = {}  # chart -> (alt, width, height) as the browser has it
    page = context.new_page()
    for name, text in pages().items():
        if "assets/charts/" not in text:
            continue
        page.goto(urljoin(site_url, "" if name == "index.md" else name.removesuffix(".md") + "/"))
        for image in page.locator("article img[src*='assets/charts/']").all():
            image.scroll_into_view_if_needed()
            page.wait_for_function("i => i.complete", arg=image.element_handle())
            src, alt, width, height = image.evaluate("i => [i.src, i.alt, i.naturalWidth, i.naturalHeight]")
            shown["assets/charts/" + src.rsplit("/", 1)[1]] = (alt, width, height)
    assert set(shown) == {chart.target for chart in CHARTS}
    for chart, (alt, width, height) in shown.items():
        assert len(alt) > 20, chart  # says what the chart shows
        assert width > 100, chart  # decoded and drawn, not a broken image
        assert height > 100, chart


# Material draws each diagram into a closed shadow root; opened, the test can read what it drew.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, {...init, mode: "open"}); };
"""
DRAWN = """host => {
  const svg = host.shadowRoot && host.shadowRoot.querySelector("svg");
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const label = svg.querySelector(".nodeLabel, text.messageText, text.actor");
  const style = label && getComputedStyle(label);
  return {
    width: box.width, height: box.height,
    title: (svg.querySelector("title") || {}).textContent || "",
    desc: (svg.querySelector("desc") || {}).textContent || "",
    labelledby: svg.getAttribute("aria-labelledby") || "",
    ink: style ? style.color + " " + style.fill : "",
    scheme: document.body.getAttribute("data-md-color-scheme"),
  };
}"""


def test_every_diagram_renders_offline_in_light_and_dark_with_its_title(
    browser: Browser, site_url: str
) -> None:
    """Each mermaid block: drawn as an SVG of real size by the vendored mermaid (no request leaves
    the site), its accTitle and accDescr as the SVG's title and description, in both schemes."""
    from tests.docs.test_diagrams import diagrams

    expected = {
        page: [
            next(line.split(":", 1)[1].strip() for line in body if line.strip().startswith("accTitle"))
            for body in bodies
        ]
        for page, bodies in diagrams().items()
    }
    drawn: dict[str, dict[str, list[dict[str, object]]]] = {}
    problems: list[str] = []
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
        context.add_init_script(OPEN_SHADOW_ROOTS)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: None if r.url.startswith(site_url) else problems.append(r.url))
        for name, titles in expected.items():
            page.goto(urljoin(site_url, name.removesuffix(".md") + "/"), wait_until="load")
            hosts = page.locator("article div.mermaid")
            page.wait_for_function(
                "n => [...document.querySelectorAll('article div.mermaid')].filter(h => h.shadowRoot"
                " && h.shadowRoot.querySelector('svg')).length === n",
                arg=len(titles),
            )
            assert page.locator("article pre.mermaid").count() == 0  # no source left undrawn
            drawn.setdefault(scheme, {})[name] = [hosts.nth(n).evaluate(DRAWN) for n in range(len(titles))]
        context.close()
    assert problems == []
    for name, titles in expected.items():
        for n, title in enumerate(titles):
            light, dark = drawn["light"][name][n], drawn["dark"][name][n]
            assert (light["scheme"], dark["scheme"]) == ("default", "slate")
            for seen in (light, dark):
                assert seen["title"] == title, name
                assert len(str(seen["desc"])) > 40, name
                assert seen["labelledby"], name  # the title is the SVG's accessible name
                assert float(str(seen["width"])) > 200, name
                assert float(str(seen["height"])) > 100, name
            assert light["ink"], name
            assert light["ink"] != dark["ink"], name  # drawn in each scheme's colours


def test_screenshot_of_the_decisions_pages_for_review(context: BrowserContext, site_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = context.new_page()
    for path, name in (("decisions/", "decisions.png"), ("decisions/async/", "decision-6-async.png")):
        page.goto(urljoin(site_url, path))
        page.wait_for_load_state("networkidle")
        shot = ARTIFACTS / name
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000


# --8<-- [start:test_swagger_authorize]
@pytest.mark.pattern("AU01")
def test_swagger_ui_authorizes_and_calls_a_protected_route(browser: Browser, scratch_url: str) -> None:
    """The app's own /docs, served by uvicorn: log in with the Authorize button, then Try it out."""

    from alembic import command

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one: migrate in another
        thread.submit(command.upgrade, alembic_config(scratch_url), "head").result()
    with served_app(scratch_url) as app:
        ada = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
        user_id = httpx.post(f"{app.url}/api/v1/users", json=ada).json()["id"]
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        page = context.new_page()
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(app.url) else outside.append(r.url))
        refused: list[str] = []  # what the page's Content-Security-Policy blocked, if anything
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{app.url}/docs")

        page.locator("button.authorize").first.click()  # the Authorize button, top right
        page.fill("#oauth_username", ada["email"])
        page.fill("#oauth_password", ada["password"])
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/token")) as login:
            page.locator(".auth-btn-wrapper button.authorize").click()
        assert login.value.status == 200
        page.locator(".auth-btn-wrapper button.btn-done").click()  # close the dialog

        operation = page.locator("#operations-users-get_user_api_v1_users__user_id__get")
        operation.locator(".opblock-summary").click()
        operation.locator("button.try-out__btn").click()
        operation.locator('tr[data-param-name="user_id"] input').fill(str(user_id))
        with page.expect_response(lambda r: r.url.endswith(f"/api/v1/users/{user_id}")) as call:
            operation.locator("button.execute").click()
        assert call.value.status == 200  # Swagger UI sent the bearer token it got at login
        assert call.value.request.headers["authorization"].startswith("Bearer ")
        assert call.value.json()["email"] == ada["email"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "swagger-ui-authorized.png"), full_page=False)
        context.close()
    assert outside == []  # Swagger UI's files come from the app, not a CDN
    assert refused == []  # and its policy lets the page do all of the above


# --8<-- [end:test_swagger_authorize]
