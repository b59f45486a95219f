"""The recorded runs, for the guide: charts drawn as SVG and figures for its prose, at build time.

The numbers come only from the JSON a `--record` run wrote (bench/results/); nothing here is
typed by hand. devtools/docs_hooks.py adds each chart of CHARTS to the site and replaces each
`[[figure <record> <name>]]` on a page with FIGURES[<record>](its JSON)[<name>]. Plain SVG,
written out: horizontal bars, one panel per comparison, or lines over time; system fonts, no
scripts, on a light card so it reads in the dark theme too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

WIDTH, PAD, LABEL_W, VALUE_W = 760, 16, 270, 110
BAR_H, BAR_GAP, TITLE_H, PANEL_GAP, CHAR_W = 20, 8, 26, 18, 7.5
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
HIGHLIGHT, OTHER, GOAL, INK, MUTED = "#00897b", "#90a4ae", "#d84315", "#263238", "#607d8b"
Data = Mapping[str, Any]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as printed after the bar
    highlight: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    bars: tuple[Bar, ...]
    goal: float | None = None  # a dashed line at this value
    goal_text: str = ""


def _text(x: float, y: float, content: str, **attrs: str) -> str:
    extra = "".join(f" {name.replace('_', '-')}={quoteattr(value)}" for name, value in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def _svg(title: str, subtitle: str, height: float, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" font-family="{FONT}">',
            f"<title>{escape(title)}</title>",
            f"<desc>{escape(subtitle)}</desc>",
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1:.0f}" rx="8" '
            'fill="#ffffff" stroke="#cfd8dc"/>',
            _text(PAD, PAD + 16, title, font_size="17", font_weight="600", fill=INK),
            _text(PAD, PAD + 36, subtitle, font_size="12", fill=MUTED),
            *body,
            "</svg>",
            "",
        ]
    )


def render(title: str, subtitle: str, panels: Sequence[Panel]) -> str:
    """Each panel's bars on a scale of its own, under a title and a subtitle."""
    bars_x = PAD + LABEL_W + 8
    bars_w = WIDTH - bars_x - VALUE_W - PAD
    body: list[str] = []
    y = PAD + 56.0
    for panel in panels:
        body.append(_text(PAD, y + 16, panel.title, font_size="14", font_weight="600", fill=INK))
        y += TITLE_H
        top = y
        scale = max([b.value for b in panel.bars] + [panel.goal or 0.0]) or 1.0
        goal_x = None if panel.goal is None else bars_x + bars_w * panel.goal / scale
        for bar in panel.bars:
            width = max(bars_w * bar.value / scale, 1.0)
            middle, weight = y + BAR_H / 2 + 4.5, {"font_weight": "600"} if bar.highlight else {}
            x = bars_x + width + 6
            if goal_x is not None and x - 4 <= goal_x <= x + len(bar.text) * CHAR_W:
                x = goal_x + 6  # the number clear of the goal line
            body += [
                _text(bars_x - 8, middle, bar.label, font_size="13", fill=INK, text_anchor="end", **weight),
                f'<rect x="{bars_x}" y="{y:.1f}" width="{width:.1f}" height="{BAR_H}" rx="2" '
                f'fill="{HIGHLIGHT if bar.highlight else OTHER}">'
                f"<title>{escape(f'{bar.label}: {bar.text}')}</title></rect>",
                _text(x, middle, bar.text, font_size="13", fill=INK, **weight),
            ]
            y += BAR_H + BAR_GAP
        if goal_x is not None:
            body += [
                f'<line x1="{goal_x:.1f}" y1="{top - 4:.1f}" x2="{goal_x:.1f}" y2="{y - BAR_GAP + 4:.1f}" '
                f'stroke="{GOAL}" stroke-width="1.5" stroke-dasharray="4 3"/>',
                _text(goal_x + 4, y + 8, panel.goal_text, font_size="12", fill=GOAL),
            ]
            y += 14
        y += PANEL_GAP
    return _svg(title, subtitle, y - PANEL_GAP + PAD, body)


def render_lines(title: str, subtitle: str, unit: str, lines: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """Lines of (seconds, value) points on shared axes; the first line in the highlight colour."""
    left, top, width, height = PAD + 56, PAD + 70.0, WIDTH - 2 * PAD - 72, 260.0
    x_max = max(p[0] for points in lines.values() for p in points) or 1.0
    y_max = max(p[1] for points in lines.values() for p in points) or 1.0
    body = [f'<path d="M{left},{top} V{top + height} H{left + width}" fill="none" stroke="{MUTED}"/>']
    for i in range(5):  # gridlines and their values
        y = top + height - height * i / 4
        body.append(
            _text(left - 6, y + 4, f"{y_max * i / 4:,.0f}", font_size="11", fill=MUTED, text_anchor="end")
        )
        x = left + width * i / 4
        body.append(
            _text(
                x,
                top + height + 16,
                f"{x_max * i / 4:,.1f} s",
                font_size="11",
                fill=MUTED,
                text_anchor="middle",
            )
        )
    body.append(_text(left, top - 10, unit, font_size="12", fill=MUTED))
    for n, (label, points) in enumerate(lines.items()):
        colour = HIGHLIGHT if n == 0 else GOAL
        path = " ".join(
            f"{left + width * t / x_max:.1f},{top + height - height * v / y_max:.1f}" for t, v in points
        )
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(label)}</title></polyline>"
        )
        legend_y = top + height + 36 + 18 * n
        body += [
            f'<rect x="{left}" y="{legend_y - 10}" width="14" height="4" fill="{colour}"/>',
            _text(left + 20, legend_y - 4, label, font_size="13", fill=INK),
        ]
    return _svg(title, subtitle, top + height + 36 + 18 * len(lines) + PAD, body)


def recorded(data: Data, *more: str) -> str:
    h = data["header"]
    return ", ".join(
        [
            f"Recorded {h['date'][:10]} on {h['cores']} cores (load average {h['load_average']:.1f})",
            h["postgres"],
            *more,
        ]
    )


def _rps(value: float) -> str:
    return f"{value:,.0f} req/s"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


# --- the charts ---------------------------------------------------------------------------------


def ml_serving(data: Data) -> str:
    placement, goal = data["placement"], float(data["goal_ms"])

    def name(p: Data) -> str:
        return str(p["variant"]) + (" (app)" if p["app_choice"] else "")

    rows = tuple(
        Bar(name(p), p["rows_per_s"], f"{p['rows_per_s']:,.0f} rows/s", p["app_choice"]) for p in placement
    )
    p99 = [Bar(name(p), p["health_p99_ms"], _ms(p["health_p99_ms"]), p["app_choice"]) for p in placement]
    p99.append(Bar("no prediction load", data["idle_health_p99_ms"], _ms(data["idle_health_p99_ms"])))
    panels = [
        Panel(
            f"Rows/s, {data['connections']} clients posting {data['batch_rows']}-row batches "
            "(higher is better)",
            rows,
        ),
        Panel("p99 of GET /health meanwhile (lower is better)", tuple(p99), goal, f"goal: {goal:.0f} ms"),
    ]
    for title, ways in (
        ("Batch vs single requests, rows/s", data["requests"]),
        ("Writing the prediction log, rows/s", data["inserts"]),
    ):
        panels.append(
            Panel(
                title,
                tuple(
                    Bar(w["variant"], w["rows_per_s"], f"{w['rows_per_s']:,.0f} rows/s", i == 0)
                    for i, w in enumerate(ways)
                ),
            )
        )
    subtitle = recorded(data, f"{data['rounds']} \u00d7 {data['seconds']} s per variant")
    return render("ML serving: where inference runs, and what batching buys", subtitle, panels)


def ml_serving_batching(data: Data) -> str:
    """Single predictions with micro-batching off and on (bench/ml_serving.py, LC06)."""
    singles, goal_ms = data["singles"], float(data["goal_ms"])
    base = next(p for p in singles if p["baseline"])

    def name(p: Data) -> str:
        return str(p["variant"]) + (" (app)" if p["app_choice"] else "")

    def bars(key: str, text: Callable[[float], str]) -> tuple[Bar, ...]:
        return tuple(Bar(name(p), float(p[key]), text(float(p[key])), p["app_choice"]) for p in singles)

    goal = float(data["singles_goal"]) * base["ok_per_s"]
    panels = [
        Panel(
            f"Single predictions/s answered, {data['connections']} clients (higher is better)",
            bars("ok_per_s", lambda v: f"{v:,.0f}/s"),
            goal,
            f"goal: {data['singles_goal']:g}\u00d7 not batched",
        ),
        Panel(
            "p99 of the single predictions (lower is better)",
            bars("p99_ms", _ms),
            goal_ms,
            f"goal: {goal_ms:.0f} ms",
        ),
        Panel(
            "p99 of GET /health meanwhile (lower is better)",
            bars("health_p99_ms", _ms),
            goal_ms,
            f"goal: {goal_ms:.0f} ms",
        ),
    ]
    subtitle = recorded(data, f"{data['rounds']} \u00d7 {data['seconds']} s per variant")
    return render("Micro-batching: single predictions under load", subtitle, panels)


def hot_path(data: Data) -> str:
    got = {(m["variant"], m["load"]): m["requests_per_s"] for m in data["measures"]}
    by_id = [Bar(v, r, _rps(r), v == "app") for (v, load), r in got.items() if load == "by-id"]
    core = got.get(("core", "by-id"), 0.0)
    panels = [
        Panel(
            "GET /posts/{id}: the app, its options and the floors, req/s",
            tuple(by_id),
            0.9 * core,
            "goal: 0.9 \u00d7 Core",
        )
    ]
    shares = []
    for load, label in data["loads"].items():
        for floor in ("core", "raw-asyncpg"):
            if (app := got.get(("app", load))) and (base := got.get((floor, load))):
                shares.append(
                    Bar(
                        f"{label.split(' (')[0]}, vs {floor}",
                        app / base,
                        f"{app / base:.2f}\u00d7",
                        floor == "core",
                    )
                )
    panels.append(
        Panel(
            "The app's throughput as a share of each floor's, same SQL and response",
            tuple(shares),
            0.9,
            "goal: 0.9 \u00d7 Core",
        )
    )
    pf04, goal = data["pf04"], float(data["goal_p99_ms"])
    cheap = [
        Bar(label, pf04[key]["p99_ms"], _ms(pf04[key]["p99_ms"]), key == "paced")
        for key, label in (
            ("loaded", "with the slow load"),
            ("paced", f"... paced ({data['pace_ms']} ms pauses)"),
            ("alone", "alone"),
        )
    ]
    panels.append(
        Panel(
            f"p99 of a cheap GET while {data['connections']} connections run 20 ms queries",
            tuple(cheap),
            goal,
            f"goal: {goal:.0f} ms",
        )
    )
    subtitle = recorded(
        data, f"wrk -c{data['connections']}, {data['rounds']} \u00d7 {data['seconds']} s each"
    )
    return render("The hot path: the app against its library's floors", subtitle, panels)


def hot_path_ladder(data: Data) -> str:
    labels, measures = data["labels"], {(m["variant"], m["route"]): m for m in data["measures"]}
    ladder = [measures[(key, "by-id")] for key in (*data["ladder"], "raw")]
    bars = tuple(
        Bar(labels[m["variant"]], m["requests_per_s"], _rps(m["requests_per_s"]), m["variant"] == "app")
        for m in ladder
    )
    goal = float(data["goal_raw_ratio"])
    panel = Panel(
        "GET /posts/{id}, requests/s (higher is better)",
        bars,
        goal * ladder[-1]["requests_per_s"],
        f"goal then: {goal:g} \u00d7 raw asyncpg",
    )
    subtitle = recorded(
        data, f"wrk -c{data['connections']}, {data['rounds']} \u00d7 {data['seconds']} s each"
    )
    return render("The ladder: from the original pattern to the app, one change at a time", subtitle, [panel])


def scale_out(data: Data) -> str:
    panels = [
        Panel(
            f"{label}, req/s",
            tuple(
                Bar(m["variant"], m["requests_per_s"], _rps(m["requests_per_s"]), i == 0)
                for i, m in enumerate(m for m in data["measures"] if m["load"] == load)
            ),
        )
        for load, label in data["loads"].items()
    ]
    subtitle = recorded(
        data, f"wrk -c{data['connections']}, {data['rounds']} \u00d7 {data['seconds']} s each"
    )
    return render("Scale-out: workers, and PgBouncer in transaction mode", subtitle, panels)


def log_reading_pages(data: Data) -> str:
    depths = dict.fromkeys(r["depth"] for r in data["pages"])
    panels = [
        Panel(
            f"A page of 20 after {depth:,} rows, req/s",
            tuple(
                Bar(r["way"], r["requests_per_s"], _rps(r["requests_per_s"]), r["way"].startswith("keyset"))
                for r in data["pages"]
                if r["depth"] == depth
            ),
        )
        for depth in depths
    ]
    subtitle = recorded(data, f"{data['rows']:,} rows, wrk -c{data['connections']}")
    return render("Keyset against OFFSET, by depth", subtitle, panels)


def log_reading_memory(data: Data) -> str:
    lines = {e["way"]: e["series"] for e in data["exports"]}
    subtitle = recorded(data, f"{data['rows']:,} rows, RSS every {data['sample_ms']} ms")
    return render_lines("The export: the server's memory while it answers", subtitle, "RSS, MiB", lines)


def vector_search(data: Data) -> str:
    panels = [
        Panel(
            f"{size['rows']:,} rows: p50 of a query, ms (lower is better)",
            tuple(Bar(w["name"], w["p50_ms"], _ms(w["p50_ms"]), "app's" in w["name"]) for w in size["ways"]),
        )
        for size in data["sizes"]
    ]
    subtitle = recorded(data, f"{data['queries']} queries, top {data['k']}")
    return render("Semantic search: HNSW against an exact scan", subtitle, panels)


def drift(data: Data) -> str:
    """Features flagged and PSI per scenario (bench/drift.py)."""
    threshold, scenarios = float(data["threshold"]), data["scenarios"]

    def bars(key: str, text: Callable[[Data], str]) -> tuple[Bar, ...]:
        return tuple(Bar(s["name"], float(s[key]), text(s), s["status"] == "drift") for s in scenarios)

    goal = f"threshold {threshold:g}"
    panels = [
        Panel(
            f"Pixels flagged (PSI \u2265 {threshold:g}), of 64",
            bars("flagged_features", lambda s: f"{s['flagged_features']}"),
        ),
        Panel(
            "Median PSI of the 64 pixels",
            bars("median_feature_psi", lambda s: f"{s['median_feature_psi']:.3f}"),
            threshold,
            goal,
        ),
        Panel(
            "PSI of the predicted labels",
            bars("label_psi", lambda s: f"{s['label_psi']:.3f}"),
            threshold,
            goal,
        ),
    ]
    subtitle = recorded(data, f"{data['model']}, {scenarios[0]['rows']} held-out rows per scenario")
    return render("Drift reports: the same digits, altered or not", subtitle, panels)


def shadow_report(data: Data) -> str:
    """The recorded shadow report (bench/shadow.py): agreement and latency per version pair."""
    pairs = data["report"]["pairs"]

    def pair(p: Data) -> str:
        return f"{p['candidate_version']} shadowing {p['production_version']}"

    agreement = tuple(
        Bar(pair(p), p["agreement"] * 100, f"{p['agreement']:.1%} of {p['rows']:,}", True) for p in pairs
    )
    latency = tuple(
        Bar(
            f"{p[f'{side}_version']} ({side}), {q}",
            p[f"{side}_latency"][f"{q}_ms"],
            _ms(p[f"{side}_latency"][f"{q}_ms"]),
            side == "candidate",
        )
        for p in pairs
        for side in ("production", "candidate")
        for q in ("p50", "p95")
    )
    panels = [
        Panel("Same label as production, % of the shadowed rows", agreement),
        Panel("latency_ms in the log (production's includes its wait for a thread and its batch)", latency),
    ]
    subtitle = recorded(data, f"{data['requests']} single predictions, every one shadowed")
    return render("The shadow report: a candidate on production's traffic", subtitle, panels)


CELL = 14  # one pixel of a digit in the drift grid


def _psi_colour(value: float, watch: float, threshold: float) -> str:
    if value < watch:
        return "#eceff1"
    if value < threshold:
        return "#ffcc80"
    return "#e64a19" if value < 1 else "#b71c1c"


def drift_pixels(data: Data) -> str:
    """One 8x8 grid per scenario (bench/drift.py): where on the image the PSI is."""
    watch, threshold, scenarios = float(data["watch"]), float(data["threshold"]), data["scenarios"]
    grid, top, column = 8 * CELL, PAD + 76.0, (WIDTH - 2 * PAD) / len(scenarios)
    legend = f"under {watch:g}: stable; {watch:g} to {threshold:g}: watch; {threshold:g} and over: drift"
    body = [_text(PAD, PAD + 56, legend + " (darkest: 1 and over)", font_size="12", fill=MUTED)]
    for i, s in enumerate(scenarios):
        x0 = PAD + i * column + (column - grid) / 2
        for j, value in enumerate(s["feature_psi"]):
            row, col = divmod(j, 8)
            body.append(
                f'<rect x="{x0 + col * CELL:.1f}" y="{top + row * CELL:.1f}" width="{CELL - 1}" '
                f'height="{CELL - 1}" fill="{_psi_colour(float(value), watch, threshold)}">'
                f"<title>{escape(f'pixel {j}: PSI {float(value):.3f}')}</title></rect>"
            )
        for k, line in enumerate((s["name"], f"{s['flagged_features']} of 64 flagged")):
            x, y = x0 + grid / 2, top + grid + 18 + 16 * k
            body.append(_text(x, y, line, font_size="12", fill=INK, text_anchor="middle"))
    return _svg("Where the drift is: PSI of each pixel", recorded(data), top + grid + 34 + PAD, body)


def _steps(data: Data) -> list[tuple[str, str, str, float]]:
    """(load, variant, base, the variant's throughput over the base's): the budgeted steps of
    bench/observability.py, then full tracing against the metrics."""
    rps = {(m["variant"], m["load"]): m["requests_per_s"] for m in data["measures"]}
    steps = [*data["steps"], ("metrics + traces 100 %", "metrics")]
    return [(load, v, b, rps[(v, load)] / rps[(b, load)]) for load in data["loads"] for v, b in steps]


def observability(data: Data) -> str:
    goal, loads = float(data["goal"]), list(data["loads"])
    cpu = Panel(
        "CPU per request, ms (lower is better)",
        tuple(
            Bar(
                f"{m['load']}: {m['variant']}",
                m["cpu_ms"],
                f"{m['cpu_ms']:.2f} ms",  # two decimals: the steps differ by tenths
                m["variant"] == "metrics + traces 1 %",
            )
            for m in sorted(data["measures"], key=lambda m: loads.index(m["load"]))
        ),
    )
    kept = Panel(
        "Throughput kept by each step, against the step before it",
        tuple(
            Bar(f"{load}: {v.removeprefix('metrics + ')} vs {b}", share, f"{share:.2f}\u00d7", "1 %" in v)
            for load, v, b, share in _steps(data)
        ),
        goal,
        f"budget: {goal:g}\u00d7",
    )
    subtitle = recorded(
        data, f"wrk -c{data['connections']}, {data['rounds']} \u00d7 {data['seconds']} s each"
    )
    return render("What observability costs: metrics, and traces sampled at the edge", subtitle, [cpu, kept])


@dataclass(frozen=True)
class Chart:
    source: str  # the recorded JSON's name in bench/results/
    target: str  # where the built site serves the SVG, relative to the site root
    draw: Callable[[Data], str]

    def svg(self, root: Path) -> str:
        return self.draw(load(root, self.source))


def load(root: Path, record: str) -> Data:
    """A recorded run's JSON (bench/results/<record>.json below the project's `root`)."""
    data: Data = json.loads((root / "bench" / "results" / f"{record}.json").read_text(encoding="utf-8"))
    return data


CHARTS = tuple(
    Chart(source, f"assets/charts/{draw.__name__}.svg", draw)
    for source, draw in (
        ("ml_serving", ml_serving),
        ("ml_serving", ml_serving_batching),
        ("hot_path", hot_path),
        ("hot_path_ladder", hot_path_ladder),
        ("scale_out", scale_out),
        ("log_reading", log_reading_pages),
        ("log_reading", log_reading_memory),
        ("vector_search", vector_search),
        ("drift", drift),
        ("drift", drift_pixels),
        ("shadow", shadow_report),
        ("observability", observability),
    )
)


# --- figures for the prose --------------------------------------------------------------------------


def _by(rows: Sequence[Data], key: str, value: str) -> Data:
    found = [r for r in rows if r[key] == value]
    if len(found) != 1:
        raise KeyError(f"no single row with {key} = {value!r}")
    return found[0]


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else _ms(ms)


def ml_serving_figures(data: Data) -> dict[str, str]:
    p = {row["variant"]: row for row in data["placement"]}
    app = next(row for row in data["placement"] if row["app_choice"])
    requests, inserts = data["requests"], data["inserts"]
    found = {"app_p99": _ms(app["health_p99_ms"]), "batch_cpu": f"{app['cpu_ms_per_request']:.0f} ms"}
    found["app_batch_p99"] = _seconds(app["batch_p99_ms"])
    # the share of the app's prediction attempts the admission limit answered 503
    served = app["rows_per_s"] / data["batch_rows"] * data["seconds"] * data["rounds"]
    found["app_shed_share"] = f"{app['shed'] / (app['shed'] + served):.0%}"
    if admitted := p.get("app, all admitted"):
        found["admitted_p99"] = _ms(admitted["health_p99_ms"])
        found["admitted_p99_ratio"] = f"{admitted['health_p99_ms'] / app['health_p99_ms']:.0f}"
        found["admitted_batch_p99"] = _seconds(admitted["batch_p99_ms"])
        found["app_rows_share"] = f"{app['rows_per_s'] / admitted['rows_per_s']:.1f}"
    for name, key in (("on the event loop", "loop"), ("process pool of 2", "pool")):
        if row := p.get(name):  # the placements the app does not have, against its choice
            found[f"{key}_rows_ratio"] = f"{row['rows_per_s'] / app['rows_per_s']:.2f}"
            found[f"{key}_cpu"] = f"{row['cpu_ms_per_request']:.0f} ms"
    for name, key in (("app, no gc.freeze", "no_freeze"), ("app, neither", "neither")):
        if row := p.get(name):
            found[f"{key}_p99"] = _seconds(row["health_p99_ms"])
            found[f"{key}_p99_ratio"] = f"{row['health_p99_ms'] / app['health_p99_ms']:.1f}"
    if singles := data.get("singles"):  # micro-batching (LC06)
        base = next(row for row in singles if row["baseline"])
        batched = next(row for row in singles if row["app_choice"])
        admitted = next(row for row in singles if not row["baseline"] and "not batched" in row["variant"])
        found["singles_ratio"] = f"{batched['ok_per_s'] / base['ok_per_s']:.1f}"
        found["singles_admitted_ratio"] = f"{admitted['ok_per_s'] / base['ok_per_s']:.1f}"
        found["singles_batched_rate"] = f"{batched['ok_per_s']:,.0f}"
        found["singles_base_rate"] = f"{base['ok_per_s']:,.0f}"
        found["singles_p99"] = _ms(batched["p99_ms"])
        found["singles_health_p99"] = _ms(batched["health_p99_ms"])
        found["singles_cpu"] = f"{batched['cpu_ms_per_request']:.2f} ms"
        found["singles_base_cpu"] = f"{base['cpu_ms_per_request']:.2f} ms"
        floor = next(row for row in singles if row["floor"])  # neither model nor log
        found["singles_floor_ratio"] = f"{floor['ok_per_s'] / base['ok_per_s']:.1f}"
        found["singles_floor_share"] = f"{batched['ok_per_s'] / floor['ok_per_s']:.0%}"
        found["singles_floor_cpu"] = f"{floor['cpu_ms_per_request']:.2f} ms"
        rows, pool = 2 * data["batch_max_rows"], 2 * data["pool_size"]  # a batch twice the default's
        by_name = {row["variant"]: row for row in singles}
        doubled = {
            "singles_double": f"micro-batched, {rows} rows",
            "singles_double_pool": f"micro-batched, {rows} rows, pool of {pool}",
        }
        for key, name in doubled.items():
            found[f"{key}_ratio"] = f"{by_name[name]['ok_per_s'] / batched['ok_per_s']:.2f}"
            found[f"{key}_cpu"] = f"{by_name[name]['cpu_ms_per_request']:.2f} ms"
            found[f"{key}_p99"] = _ms(by_name[name]["p99_ms"])
    found["batch_speedup"] = f"{requests[0]['rows_per_s'] / requests[1]['rows_per_s']:.0f}"
    found["per_row_slowdown"] = f"{inserts[0]['rows_per_s'] / inserts[2]['rows_per_s']:.1f}"
    return found


def scale_out_figures(data: Data) -> dict[str, str]:
    rps = {(m["variant"], m["load"]): m["requests_per_s"] for m in data["measures"]}
    found = {}
    for load in ("read", "write"):
        found[f"workers_{load}"] = f"{rps[('2 workers, direct', load)] / rps[('1 worker, direct', load)]:.2f}"
    costs = sorted(
        1 - rps[("1 worker, through PgBouncer", load)] / rps[("1 worker, direct", load)]
        for load in ("read", "write")
    )
    found["pgbouncer_cost"] = f"{costs[0] * 100:.0f} to {costs[1] * 100:.0f} %"
    return found


def soak_figures(data: Data) -> dict[str, str]:
    before, after, settled = data["before"], data["after"], data["settled"]
    return {
        "idle": f"{settled['pool_idle']}",
        "pg_settled": f"{settled['pg_connections']}",
        "pg_after": f"{after['pg_connections']}",
        "fds": f"{settled['open_fds']}",
        "rss_growth": f"{settled['rss_mib'] - before['rss_mib']:.1f} MiB",
        "requests": f"{data['requests']:,}",
        "errors": f"{data['errors']}",
        "shed": f"{data['shed']:,}",
        "shed_share": f"{data['shed'] / data['requests']:.0%}",
        "p99": _seconds(data["p99_ms"]),
    }


def log_reading_figures(data: Data) -> dict[str, str]:
    keyset = [r for r in data["pages"] if r["way"].startswith("keyset")]
    deepest = max(r["depth"] for r in data["pages"])
    deep_k, deep_o = (
        _by([r for r in data["pages"] if r["depth"] == deepest], "way", w)
        for w in ("keyset (after=)", "OFFSET (skip=)")
    )
    streamed, whole = data["exports"]

    def listed(values: Sequence[str]) -> str:
        return ", ".join(values[:-1]) + " and " + values[-1]

    return {
        "rows": f"{data['rows']:,}",
        "size": f"{streamed['size_mib']:.0f} MiB",
        "keyset_rates": listed([f"{r['requests_per_s']:.0f}" for r in keyset]),
        "depths": listed([f"{r['depth']:,}" for r in keyset]),
        "deepest": f"{deepest:,}",
        "deep_offset_rate": f"{deep_o['requests_per_s']:.0f}",
        "deep_keyset_rate": f"{deep_k['requests_per_s']:.0f}",
        "deep_offset_p50": _ms(deep_o["p50_ms"]),
        "deep_keyset_p50": _ms(deep_k["p50_ms"]),
        "stream_first": _seconds(streamed["first_byte_s"] * 1000),
        "whole_first": _seconds(whole["first_byte_s"] * 1000),
        "first_ratio": f"{whole['first_byte_s'] / streamed['first_byte_s']:.0f}",
        "stream_growth": f"{streamed['growth_mib']:.0f} MiB",
        "stream_growth_early": f"{streamed['growth_early_mib']:.0f} MiB",
        "whole_growth": f"{whole['growth_mib']:.0f} MiB",
        "growth_ratio": f"{whole['growth_mib'] / max(streamed['growth_mib'], 1):.0f}",
        "stream_last": _seconds(streamed["whole_s"] * 1000),
        "whole_last": _seconds(whole["whole_s"] * 1000),
        "last_longer": f"{streamed['whole_s'] / whole['whole_s'] - 1:.0%}",
    }


def hot_path_figures(data: Data) -> dict[str, str]:
    got = {(m["variant"], m["load"]): m for m in data["measures"]}

    def share(of: str, floor: str, load: str = "by-id", key: str = "requests_per_s") -> str:
        value, base = got[(of, load)][key], got[(floor, load)][key]
        return f"{(base / value if key == 'cpu_ms' else value / base):.2f}"  # CPU: the floor's over the app's

    return {
        "by_id_core": share("app", "core"),
        "list_core": share("app", "core", "list"),
        "by_id_raw": share("app", "raw-asyncpg"),
        "list_raw": share("app", "raw-asyncpg", "list"),
        "by_id_core_cpu": share("app", "core", key="cpu_ms"),
        "list_core_cpu": share("app", "core", "list", "cpu_ms"),
        "driver_core": share("driver", "core"),
        "raw_core": share("raw-asyncpg", "core"),
        "app_cpu": f"{got[('app', 'by-id')]['cpu_ms']:.2f} ms",
        "core_cpu": f"{got[('core', 'by-id')]['cpu_ms']:.2f} ms",
    }


PROFILE_LAYERS = {  # a figure's name: the layer of bench/profile.py whose app - floor it shows
    "routing": "FastAPI: finding the route among the app's",
    "dependencies": "FastAPI: resolving dependencies",
    "session": "SQLAlchemy: the session",
    "middleware": "the app's middleware",
    "response": "FastAPI: the response model",
}


def profile_figures(data: Data) -> dict[str, str]:
    layers = data["layers"]
    app, core = (sum(layers[name].values()) for name in ("app", "core"))
    more = {
        name: f"{layers['app'].get(layer, 0) - layers['core'].get(layer, 0):,.0f} \u00b5s"
        for name, layer in PROFILE_LAYERS.items()
    }
    return {
        "app_us": f"{app:,.0f} \u00b5s",
        "core_us": f"{core:,.0f} \u00b5s",
        "share": f"{core / app:.2f}",
        **more,
    }


def vector_search_figures(data: Data) -> dict[str, str]:
    smallest, largest = data["sizes"][0], data["sizes"][-1]

    def app(size: Data) -> str:
        return _ms(next(w for w in size["ways"] if "app's" in w["name"])["p50_ms"])

    exact = _ms(_by(largest["ways"], "name", "exact scan")["p50_ms"])
    return {
        "embed": _ms(data["embed_ms"]),
        "exact_largest": exact,
        "app_largest": app(largest),
        "app_smallest": app(smallest),
    }


def observability_figures(data: Data) -> dict[str, str]:
    """`<metrics|traces|full>_<load>`: the throughput the step keeps, e.g. "0.97\u00d7"."""
    names = {"metrics": "metrics", "metrics + traces 1 %": "traces", "metrics + traces 100 %": "full"}
    return {
        f"{names[v]}_{load.replace('-', '_')}": f"{share:.2f}\u00d7" for load, v, _, share in _steps(data)
    }


FIGURES: dict[str, Callable[[Data], dict[str, str]]] = {
    "ml_serving": ml_serving_figures,
    "ml_serving_ladder": ml_serving_figures,
    "scale_out": scale_out_figures,
    "soak": soak_figures,
    "log_reading": log_reading_figures,
    "vector_search": vector_search_figures,
    "hot_path": hot_path_figures,
    "hot_path_profile": profile_figures,
    "observability": observability_figures,
    "model_artifact": lambda data: {"onnx_size": f"{data['sizes']['onnx'] / 1e6:.1f} MB"},
}


def figure(root: Path, record: str, name: str) -> str:
    """`[[figure <record> <name>]]` on a page: one figure of a recorded run, formatted for prose."""
    return FIGURES[record](load(root, record))[name]
