"""No page types a measured figure by hand: figures come from the recorded runs (bench/results/),
as an include of a record's section, a chart drawn from its JSON, or `[[figure <record> <name>]]`
in the prose, which the build replaces with that figure of the record (devtools/charts.py).

What this finds: a number with a unit of measure (req/s, ms, s, MiB, %, times...) in a page's
prose, outside code, includes and figure tokens. Numbers that are not measured (a setting's
default, a limit, a test's own parameter) are allowed page by page, each with its reason.
"""

from __future__ import annotations

import re

from devtools.docs_source import DOCS, outside_fences, pages

UNITS = r"req/s|requests a second|pages a second|rows/s|jobs/s|ms|MiB|MB|GiB|KiB|%|times"
# a unit after the number (seconds after a space: "503s" are statuses); a ratio's x (or the
# multiplication sign) right after it: "64 x 5" is arithmetic
FIGURE = re.compile(rf"(?<![\w.$/-])\d[\d,]*(?:\.\d+)?(?:\s?(?:{UNITS})|\s(?:s|seconds)|[x\u00d7])(?![\w/])")
NOT_PROSE = re.compile(r"`[^`]*`|\[\[[^\]]*\]\]|<!--.*?-->|\]\([^)]*\)")

# page -> {figure: why it is not a measured figure}
ALLOWED: dict[str, dict[str, str]] = {
    "decisions/async.md": {
        "0.4 s": "the test's slow query",
        "50 ms": "when the test sends its cheap request",
        "20 ms": "the wait the benchmark adds to the query",
        "64 MiB": "Argon2id's memory cost, a setting's default",
    },
    "decisions/sessions.md": {"30 s": "SQLAlchemy's default pool_timeout"},
    "deployment.md": {
        "30 s": "serve's --timeout-graceful-shutdown, and the image test's limit",
        "0.3 s": "the test's wait",
        "10 s": "nginx's client_header_timeout in deploy/",
        "60 s": "nginx's default",
        "1 s": "the test's timeout",
        "20 MB": "the body the test sends",
    },
    "observability.md": {
        "1 %": "a sampling ratio the benchmark sets",
        "100 %": "a sampling ratio the benchmark sets",
        "5 %": "the budget, a goal",
    },
    "hardening.md": {
        "10 MB": "the body the probe sent",
        "50 MB": "the body the probe sent",
        "64 KiB": "what the test sends of a body that declares 10 MB",
        "20 MB": "the body the tests send",
        "100 MB": "the body the probe sent",
        "2 MiB": "MAX_REQUEST_BODY_BYTES's default",
        "60 s": "asyncpg's default connect timeout; the soak's length",
        "10 s": "the pool's wait before the settings (SQLAlchemy's pool_timeout as the app set it then)",
        "2 s": "HEALTH_CHECK_TIMEOUT's default; the tests' margin",
        "3 s": "DB_POOL_TIMEOUT's and DB_CONNECT_TIMEOUT's default",
        "5 s": "DB_STATEMENT_TIMEOUT's default",
        "6 s": "DB_COMMAND_TIMEOUT's default",
        "12 s": "the sum of the default waits",
        "1 s": "the tests' pool and connect timeouts",
        "1.5 s": "the tests' command timeout",
        "3.5 s": "the tests' bound, from their settings",
        "30 s": "how long the client waited before the settings (its own timeout)",
    },
    "ml/search.md": {
        "16 MB": "the size of a file of the wordllama wheel",
        "100 MB": "100,000 vectors of 256 floats: the table's size, by arithmetic",
    },
    "project-structure.md": {"1 KiB": "the test's body limit", "2 KiB": "the test's body"},
    "testing.md": {"8 KiB": "the tests' Argon2 memory cost (CHEAP_HASHING)"},
    "ml/jobs.md": {
        "1 s": "the restart backoff's first wait",
        "2 s": "the restart backoff's second wait",
        "4 s": "the restart backoff's third wait",
        "30 s": "the restart backoff's longest wait, and the pool's",
    },
    "ml/versions.md": {"30 s": "FAILED_LOAD_SECONDS, a constant of the registry"},
    "ml/shadow-canary.md": {
        "100 %": "the shadow share the tests and the benchmark set",
        "0 %": "the shadow share the tests set",
        "30 %": "the shadow share the tests set",
    },
    "ml/micro-batching.md": {
        "100 ms": "MODEL_BATCH_WAIT_MS's upper bound",
        "0 ms": "MODEL_BATCH_WAIT_MS's value that turns batching off",
        "10 ms": "the probe's interval",
    },
    "ml/limits.md": {
        "5 ms": "MODEL_BATCH_WAIT_MS's default",
        "2 MiB": "MAX_REQUEST_BODY_BYTES's default",
        "5 s": "INFERENCE_TIMEOUT's default",
        "10 s": "REFUSED_BODY_DRAIN_SECONDS's default",
    },
    "ml/reading-the-log.md": {
        "5 ms": "how often the benchmark samples memory",
        "5 s": "DB_STATEMENT_TIMEOUT's default",
        "6 s": "DB_COMMAND_TIMEOUT's default",
        "12 MB": "the size of the test's export, from its row count",
    },
    "ml/serving.md": {"0.2 s": "the test's deadline", "50 ms": "the goal"},
    "performance.md": {
        "20 ms": "the slow query the benchmark runs",
        "10 ms": "the probe's interval",
        "50 ms": "the goal",
        "0.9 times": "the goal",
        "0.45 times": "the goal",
    },
    "security.md": {
        "64 MiB": "Argon2id's memory cost, a setting's default",
        "50 ms": "how long the test's stand-in holds each hash",
        "256 MiB": "the test's ceiling",
    },
}


def typed_figures(text: str) -> list[str]:
    found = []
    for _, line in outside_fences(text):
        if line.lstrip().startswith(("--8<--", "![")):  # an include; an image (a chart)
            continue
        found += FIGURE.findall(NOT_PROSE.sub("", line))
    return found


def test_no_page_types_a_measured_figure() -> None:
    typed = {
        page: [f for f in typed_figures(text) if f not in ALLOWED.get(page, {})]
        for page, text in pages().items()
    }
    assert {page: found for page, found in typed.items() if found} == {}


def test_the_check_finds_a_typed_figure_and_passes_a_recorded_one() -> None:
    assert typed_figures("The app serves 1,078 req/s, 4.2x raw, in 12.5 ms (3 %).") == [
        "1,078 req/s",
        "4.2x",
        "12.5 ms",
        "3 %",
    ]
    assert typed_figures("It serves [[figure hot_path app_rps]] req/s; `timeout=5 s` is code.") == []
    assert typed_figures("The share of 503s; 64 x 5 counts.") == []
    assert typed_figures('```text\n2,689 req/s\n```\n--8<-- "bench/results/x.txt"') == []


def test_every_allowed_figure_is_still_on_its_page() -> None:
    texts = pages()
    stale = {p: [f for f in allowed if f not in typed_figures(texts[p])] for p, allowed in ALLOWED.items()}
    assert {p: found for p, found in stale.items() if found} == {}
    assert (DOCS / "performance.md").exists()
