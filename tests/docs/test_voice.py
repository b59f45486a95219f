"""The pages teach; they do not tell the story of the work, and they agree with the code.

1. Process narrative. A reader meets the pattern as it is, not how it came to be: the phrases
   below are the ones that told the story of the work on earlier pages (whose goals were "met"
   or "NOT met", what "the first version" did, what "the issue" asked, a port one machine's run
   happened to get). Each names the kind of sentence it catches; a trap worth teaching is told
   as the trap ("a lock taken inside the migration's transaction deadlocks"), not as history.
2. "The original guide": the guide these pages correct is named where the corrections are
   introduced; a page that mentions it names it or links to the corrections.
3. Defaults. A sentence that names a setting of `example_app/core/config.py:Settings` in
   backticks and states its default ("`NAME` defaults to X", "`NAME` (X by default)",
   "`NAME` (default X)", "`NAME=X` (the default ...)") or a table with a Setting and a Default
   column must state the default the settings class has.
"""

from __future__ import annotations

import re
from typing import Any

from devtools.docs_source import DOCS, iter_fences, outside_fences, page_includes, pages, section_text
from example_app.core.config import Settings
from tests.support import ROOT

GOALS = r"\bNOT met\b|\b(?:is|are|was|were) (?:not )?met(?:[.:]|$)|\bmet:"
# pattern -> the kind of sentence it catches
NARRATIVE: dict[str, str] = {
    r"\b(?:of|in|by|before|after|from) this work\b|\bthis work (?:set|found|did|adds|added|changed)\b": (
        "the work as the subject: 'the goals this work set itself'"
    ),
    r"\b(?:the|this) issue\b": "the tracker's issue as the authority: 'the default the issue names'",
    GOALS: "goals scored on a reader page",
    r"\bthe first version\b|\ban earlier version\b": "what an earlier version did",
    r"\b(?:before|after) this change\b": "a change as the reference point",
    r"\bwe (?:fixed|found|changed|added|noticed)\b": "the authors' log",
    r"\bfell short\b|\bfound a bug\b|\bthe bench(?:mark)? found\b": "a finding of the work",
    r"\bfirst runs? (?:showed|found)\b": "what a first run showed",
    r"\bthe app before (?:sent|had|was|did|took|made|read)\b|\bBefore, the app\b": "the app before",
    r"\b[A-Z]{1,2}\d{2} asks\b|\bthe catalogue asks\b": "a pattern ID as the authority",
    r"\(held\)": "a status of the work in a reader's table",
    r"\bon (?:127\.0\.0\.1|localhost|0\.0\.0\.0):\d{5}\b": "a server on one machine's ephemeral port",
}
NARRATIVE_RE = re.compile("|".join(f"(?:{p})" for p in NARRATIVE), re.IGNORECASE)
# A record keeps its goal lines (met or not is what a record is for); the rest applies to it too.
RECORD_RE = re.compile("|".join(f"(?:{p})" for p in NARRATIVE if p != GOALS), re.IGNORECASE)

ORIGINAL_TITLE = "ML/AI FastAPI Architecture Guide"


def narrative(text: str, pattern: re.Pattern[str] = NARRATIVE_RE) -> list[str]:
    """Each line (page text, fences of output included: only includes are code) with a phrase."""
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


def test_no_page_narrates_the_work() -> None:
    found = {page: hits for page, text in pages().items() if (hits := narrative(text))}
    assert found == {}


def test_no_record_a_page_shows_narrates_the_work() -> None:
    """The benchmark records a page includes are read as the page is: their labels too."""
    shown = {inc for incs in page_includes().values() for inc in incs}
    records = {inc for inc in shown if inc.path.startswith("bench/results/")}
    assert len(records) >= 10
    texts = {inc.ref: section_text(inc.path, inc.section) for inc in records}
    found = {ref: hits for ref, text in texts.items() if (hits := narrative(text, RECORD_RE))}
    assert found == {}


def test_the_narrative_check_finds_each_kind() -> None:
    samples = [
        "This is the goal this work set itself.",
        "procrastinate is the default the issue names",
        "p99 under 50 ms: NOT met",
        "The goal is met.",
        "This is not the kind of sentence the issue lists.",
        "The first version of this lock did exactly that.",
        "Before this change, every request waited.",
        "We fixed it by adding a lock.",
        "It fell short in the places below.",
        "The bench found a bug on its first run.",
        "the benchmark's first runs showed p99 latencies of seconds",
        "The app before sent six round trips.",
        "a hand-made outbox is what ML07 asks not to write",
        "| [HD06](#soak) | (held) | a soak |",
        "the provider on 127.0.0.1:40363",
    ]
    assert [s for s in samples if not narrative(s)] == []
    teaching = [
        "The app serves on http://127.0.0.1:8000 and PostgreSQL listens on 5432.",
        "A lock taken inside the migration's transaction deadlocks the second instance.",
        "The issuer of the token is the app.",
        "The request is complete for the client, whose `Content-Length` is met, but not for uvicorn.",
        "The session is what makes this work with code that commits.",
        "A request held in flight finishes on the old version.",
        '{"message": "127.0.0.1:38344 - GET /api/v1/health/ready 200"}',
    ]
    assert [s for s in teaching if narrative(s)] == []


def test_the_original_guide_is_named_where_the_corrections_are_introduced() -> None:
    texts = pages()
    assert [p for p in ("index.md", "corrections.md") if ORIGINAL_TITLE not in texts[p]] == []
    # elsewhere "the original guide" links to the corrections, which name it
    unlinked = {
        page: line.strip()
        for page, text in texts.items()
        if page not in ("index.md", "corrections.md")
        for _, line in outside_fences(text)
        if re.search(r"\boriginal guide\b", line, re.IGNORECASE) and "corrections.md" not in text
    }
    assert unlinked == {}


# --- the path -------------------------------------------------------------------------------------


def test_the_landing_page_starts_with_a_prediction_and_the_nav_with_the_ml_section() -> None:
    first = next(iter_fences((DOCS / "index.md").read_text(), "index.md"))
    assert [inc.ref for inc in first.includes] == ["example_app/api/routes/predictions.py:predict"]
    nav = [line.strip() for line in (ROOT / "mkdocs.yml").read_text().splitlines() if line.startswith("  - ")]
    names = [line.removeprefix("- ").split(":")[0] for line in nav]
    assert names.index("ML patterns") < names.index("Database workflow")
    assert names.index("ML patterns") < names.index("Security") < names.index("Performance")


def test_the_readme_links_the_hosted_guide() -> None:
    site_url = re.search(r'site_url: !ENV \[SITE_URL, "(?P<url>[^"]+)"\]', (ROOT / "mkdocs.yml").read_text())
    assert site_url is not None
    assert site_url["url"] in (ROOT / "README.md").read_text().split("\n\n")[1]  # the first paragraph


# --- defaults ---------------------------------------------------------------------------------------

SETTINGS = Settings.model_fields
NAME = r"`(?P<name>[A-Z][A-Z0-9_]+)(?:=(?P<assigned>[^`]+))?`"
ATOM = r"`[^`]+`|\d[\d,_]*(?:\.\d+)?(?:\s?(?:s|seconds|minutes|ms|MiB|KiB|MB|%))?|[A-Za-z]+"
# A default stated after the name, in the same sentence.
STATED = [
    re.compile(rf"(?P<value>{ATOM})\s+by default"),
    re.compile(rf"defaults? to (?P<value>{ATOM})"),
    re.compile(rf"\(default:? (?P<value>{ATOM})\)"),
]
ASSIGNED_DEFAULT = re.compile(r"^\s*\(the default\b")
UNITS = {"s": 1, "seconds": 1, "minutes": 60, "ms": 0.001, "MiB": 2**20, "KiB": 1024, "MB": 10**6, "%": 1}


def normalise(name: str, value: Any) -> object:
    """A setting's value as a page would state it: bytes for sizes, seconds for times."""
    if name.endswith("_KIB"):
        return float(value) * 1024
    if name.endswith("_MS"):
        return float(value) / 1000
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def parse(text: str) -> object:
    text = text.strip().strip("`")
    if match := re.fullmatch(r"(\d[\d,_]*(?:\.\d+)?)\s?(s|seconds|minutes|ms|MiB|KiB|MB|%)?", text):
        return float(match[1].replace(",", "").replace("_", "")) * UNITS.get(match[2] or "", 1)
    if text.lower() in {"true", "on"}:
        return True
    if text.lower() in {"false"}:
        return False
    return text


def sentences(text: str) -> list[str]:
    """The prose of a page as sentences (paragraphs joined; code fences and includes left out)."""
    prose = " ".join(line.strip() for _, line in outside_fences(text) if not line.lstrip().startswith("|"))
    return re.split(r"(?<=[.;:!?])\s+(?=[A-Z(`*\[])", prose)


def table_defaults(text: str) -> list[tuple[str, str]]:
    """(setting, default) of each table with a Setting column: from its Default column, or the cell."""
    found: list[tuple[str, str]] = []
    columns: tuple[int, int] | None = None
    for _, line in outside_fences(text):
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        lowered = [c.lower() for c in cells]
        if columns is None:
            setting = lowered.index("setting") if "setting" in lowered else -1
            columns = (setting, lowered.index("default") if "default" in lowered else -1)
            continue
        if columns[0] < 0:
            continue
        # the setting's cell is `NAME`, or `NAME` (its default) in a table without a Default column
        name = re.match(r"`([A-Z][A-Z0-9_]+)`(?: \(([^)]+)\))?", cells[columns[0]])
        if name and name[1] in SETTINGS and (columns[1] >= 0 or name[2]):
            found.append((name[1], cells[columns[1]] if columns[1] >= 0 else name[2]))
    return found


def stated_defaults(text: str) -> list[tuple[str, str]]:
    """(setting, the value the page gives as its default) for each default the prose states."""
    found = []
    for sentence in sentences(text):
        names = [m for m in re.finditer(NAME, sentence) if m["name"] in SETTINGS]
        for i, name in enumerate(names):
            end = names[i + 1].start() if i + 1 < len(names) else len(sentence)
            after = sentence[name.end() : end]
            if name["assigned"] is not None and ASSIGNED_DEFAULT.match(after):
                found.append((name["name"], name["assigned"]))
                continue
            for pattern in STATED:
                if match := pattern.search(after):
                    found.append((name["name"], match["value"]))
                    break
    return found + table_defaults(text)


def wrong_defaults(text: str) -> list[str]:
    wrong = []
    for name, value in stated_defaults(text):
        default = SETTINGS[name].default
        if parse(value) != normalise(name, default):
            wrong.append(f"{name}: the page says {value!r}, Settings has {default!r}")
    return wrong


def test_every_default_a_page_states_is_the_settings_default() -> None:
    found = {page: wrong for page, text in pages().items() if (wrong := wrong_defaults(text))}
    assert found == {}


def test_the_defaults_check_reads_each_form() -> None:
    text = "\n".join(
        [
            "At most `INFERENCE_CONCURRENCY` (the number of cores by default) run at once.",
            "`PREDICTION_MAX_IN_PROGRESS` requests (1 by default) are in progress.",
            "`INFERENCE_TIMEOUT` defaults to 5 s. `DB_POOL_RECYCLE` (default 30 minutes) is short.",
            "`MODEL_ALIAS`, `production` by default, answers; `LOG_FORMAT=text` (the default) too.",
            "`MAX_REQUEST_BODY_BYTES` defaults to 2 MiB, and `DB_POOL_SIZE` defaults to 5.",
            "",
            "| Wait | Setting | Default |",
            "|---|---|---|",
            "| the pool | `DB_POOL_TIMEOUT` | 30 s |",
            "",
            "| Bound | Setting | Over it |",
            "|---|---|---|",
            "| time | `INFERENCE_TIMEOUT` (5 s) | `503` |",
        ]
    )
    assert stated_defaults(text) == [
        ("INFERENCE_CONCURRENCY", "cores"),
        ("PREDICTION_MAX_IN_PROGRESS", "1"),
        ("INFERENCE_TIMEOUT", "5 s"),
        ("DB_POOL_RECYCLE", "30 minutes"),
        ("MODEL_ALIAS", "`production`"),
        ("LOG_FORMAT", "text"),
        ("MAX_REQUEST_BODY_BYTES", "2 MiB"),
        ("DB_POOL_SIZE", "5"),
        ("DB_POOL_TIMEOUT", "30 s"),
        ("INFERENCE_TIMEOUT", "5 s"),
    ]
    assert wrong_defaults(text) == [
        "INFERENCE_CONCURRENCY: the page says 'cores', Settings has 2",
        "DB_POOL_SIZE: the page says '5', Settings has 10",
        "DB_POOL_TIMEOUT: the page says '30 s', Settings has 3.0",
    ]
