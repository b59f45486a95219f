"""The recorded runs (bench/results/) and what the guide draws from them, without running anything:
every record says when, where and how it was made; each chart and each figure of a page comes
from a record; the one wrk parser counts the shed apart from the errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from xml.etree import ElementTree

import pytest
from mkdocs.config import load_config
from mkdocs.structure.files import Files

from bench.harness import RESULTS, columns, header_lines, parse_wrk, pinned, split_cpus, timed, wait_until
from devtools.charts import CHARTS, FIGURES, figure
from devtools.docs_hooks import FIGURE_TOKEN
from devtools.docs_source import pages
from tests.support import ROOT

SVG = "{http://www.w3.org/2000/svg}"
HEADER = re.compile(
    r"# (?P<command>python3? .+)\n# recorded \d{4}-\d\d-\d\d( \d\d:\d\d UTC)? on \d+ cores "
    r"\(load average ([\d.]+ (at start|at the end)|not recorded)\), "
    r"(PostgreSQL [\d.]+(, fsync (on|off))?|PostgreSQL version not recorded|no database)\n"
)
WRK = """Running 10s test @ http://127.0.0.1:40000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   700.12ms  300.00ms   1.99s    70.00%
  Latency Distribution
     50%  696.40ms
     75%  900.00ms
     90%    1.20s
     99%    1.57s
  441 requests in 10.01s, 80.00KB read
  Socket errors: connect 0, read 0, write 0, timeout 5
  Non-2xx or 3xx responses: 9
Requests/sec:     44.06
Shed (503): 7
"""


def test_wrk_output_is_parsed_with_the_shed_counted_apart() -> None:
    run = parse_wrk(WRK)
    # 9 non-2xx answers, 7 of them shed (503 + Retry-After): 2 errors, and 5 socket timeouts
    assert (run.requests, run.seconds, run.p50_ms, run.p99_ms, run.errors, run.shed) == (
        441,
        10.01,
        696.4,
        1570.0,
        7,
        7,
    )
    assert run.ok_per_s == pytest.approx((441 - 7 - 7) / 10.01)
    assert parse_wrk(WRK.replace("Shed (503): 7\n", "")).errors == 14  # no shed line: every failure an error
    with pytest.raises(ValueError, match="not wrk"):
        parse_wrk("wrk: connection refused")


def test_a_pinned_process_runs_on_the_cores_it_was_given_and_the_split_shares_none() -> None:
    mine = os.sched_getaffinity(0)
    split = split_cpus()
    if len(mine) < 2:
        assert split is None  # one core: nothing to split, the bench runs unpinned
        return
    assert split is not None
    server, rest = split
    assert server
    assert rest
    assert not server & rest
    assert server | rest == mine
    where = "import os; print(sorted(os.sched_getaffinity(0)))"
    done = subprocess.run(
        [sys.executable, "-c", where], capture_output=True, text=True, preexec_fn=pinned(server)
    )
    assert done.stdout.strip() == str(sorted(server))


def test_a_reports_columns_are_titled_formatted_and_aligned() -> None:
    # "title:format", "<" aligning left; a bare title shows the value as it is
    lines = columns(["way:<{}", "req/s:{:.0f}", "errors"], [("keyset", 1234.4, 0), ("OFFSET", 9.6, 12)])
    assert lines == ["way     req/s  errors", "keyset   1234       0", "OFFSET     10      12"]
    # a row may be a mapping whose keys the formats name
    rows = [{"way": "keyset", "per_s": 1234.4, "errors": 0}, {"way": "OFFSET", "per_s": 9.6, "errors": 12}]
    assert columns(["way:<{way}", "req/s:{per_s:.0f}", "errors:{errors}"], rows) == lines


def test_timed_keeps_the_calls_after_the_warmup_and_wait_until_gives_up_in_time() -> None:
    calls: list[int] = []
    times = timed(lambda: calls.append(1), repeats=3, warmup=2)
    assert (len(times), len(calls)) == (3, 5)
    assert all(t >= 0 for t in times)
    with pytest.raises(SystemExit, match=r"waited 0\.05 s for the impossible"):
        wait_until(lambda: False, 0.05, "the impossible")
    wait_until(lambda: True, 0, "what is already true")  # no wait, no error


@pytest.mark.parametrize("record", sorted(p.name for p in RESULTS.glob("*.txt")))
def test_every_record_starts_with_its_header(record: str) -> None:
    text = (RESULTS / record).read_text()
    lines = [line for line in text.splitlines(keepends=True) if "--8<--" not in line]
    assert HEADER.match("".join(lines[:2])), lines[:2]
    for section in re.findall(r"\[start:(\w+)\]\n(.*?)# --8<-- \[end", text, re.S):  # what a page includes
        assert HEADER.match(section[1]), section[0]


@pytest.mark.parametrize("record", sorted(p.name for p in RESULTS.glob("*.json")))
def test_every_json_record_has_the_same_header_as_its_text(record: str) -> None:
    data = json.loads((RESULTS / record).read_text())
    assert next(iter(data)) == "header"
    text = (RESULTS / record).with_suffix(".txt").read_text().splitlines(keepends=True)
    assert "".join(line for line in text if "--8<--" not in line).startswith(header_lines(data["header"]))


@pytest.mark.parametrize("chart", CHARTS, ids=[c.target for c in CHARTS])
def test_each_chart_is_valid_svg_drawn_from_its_record(chart: object) -> None:
    from devtools.charts import Chart

    assert isinstance(chart, Chart)
    root = ElementTree.fromstring(chart.svg(ROOT))
    assert root.tag == f"{SVG}svg"
    assert (root.findtext(f"{SVG}title") or "") != ""
    assert (root.findtext(f"{SVG}desc") or "").startswith("Recorded ")  # the date, the machine
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    lines = list(root.iter(f"{SVG}polyline"))
    assert bars or len(lines) >= 2
    assert all(float(r.get("width", "0")) > 0 for r in bars)


def test_a_bar_shows_the_recorded_figure() -> None:
    chart = next(c for c in CHARTS if c.target == "assets/charts/scale_out.svg")
    texts = [t.text for t in ElementTree.fromstring(chart.svg(ROOT)).iter(f"{SVG}text")]
    recorded = json.loads((RESULTS / "scale_out.json").read_text())
    for m in recorded["measures"]:
        assert f"{m['requests_per_s']:,.0f} req/s" in texts


def test_the_docs_build_adds_every_chart_to_the_site() -> None:
    config = load_config(str(ROOT / "mkdocs.yml"))
    files = config.plugins.on_files(Files([]), config=config)  # the hooks' step of a build
    for chart in CHARTS:
        found = files.get_file_from_path(chart.target)
        assert found is not None
        assert ElementTree.fromstring(found.content_string).tag == f"{SVG}svg"


def test_every_chart_is_on_a_page_with_alt_text() -> None:
    shown = {
        m[1]: m[0]
        for text in pages().values()
        for m in re.findall(r"!\[([^\]]*)\]\([./]*(assets/charts/[\w.]+)\)", text)
    }
    assert {c.target for c in CHARTS} <= set(shown)
    assert all(len(alt) > 20 for alt in shown.values())


def test_every_figure_on_a_page_comes_from_its_record() -> None:
    tokens = [(m["record"], m["name"]) for text in pages().values() for m in FIGURE_TOKEN.finditer(text)]
    assert len(tokens) >= 40
    assert {record for record, _ in tokens} <= set(FIGURES)
    for record, name in tokens:
        assert figure(ROOT, record, name)  # the build fails the same way on a missing one


def test_a_figure_is_the_records_value() -> None:
    recorded = json.loads((RESULTS / "soak.json").read_text())
    assert figure(ROOT, "soak", "requests") == f"{recorded['requests']:,}"
    with pytest.raises(KeyError):
        figure(ROOT, "soak", "no such figure")
