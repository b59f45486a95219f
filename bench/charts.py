"""Charts of recorded benchmark results, drawn as SVG when the guide is built (devtools/docs_hooks.py).

The numbers come only from the JSON a `--record` run wrote next to its table (bench/results/);
nothing here is typed by hand. Plain SVG, written out: horizontal bars, one panel per comparison,
system fonts, no scripts, on a light card so it reads in the dark theme too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

WIDTH = 760
PAD = 16
LABEL_W = 270  # the bars' labels, right-aligned against the bars
VALUE_W = 110  # room for the number after the longest bar
BAR_H = 20
CHAR_W = 7.5  # about the width of a character of the 13 px text
BAR_GAP = 8
TITLE_H = 26
PANEL_GAP = 18
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
HIGHLIGHT = "#00897b"  # the app's choice (the theme's teal)
OTHER = "#90a4ae"
GOAL = "#d84315"
INK = "#263238"
MUTED = "#607d8b"


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


def _value_x(x: float, chars: int, goal_x: float | None) -> float:
    """Where a bar's number starts: after the bar, and clear of the goal line."""
    if goal_x is not None and x - 4 <= goal_x <= x + chars * CHAR_W:
        return goal_x + 6
    return x


def render(title: str, subtitle: str, panels: Sequence[Panel]) -> str:
    """An SVG document: a title, a subtitle, then each panel's bars on a scale of its own."""
    bars_x = PAD + LABEL_W + 8
    bars_w = WIDTH - bars_x - VALUE_W - PAD
    body: list[str] = [
        _text(PAD, PAD + 16, title, font_size="17", font_weight="600", fill=INK),
        _text(PAD, PAD + 36, subtitle, font_size="12", fill=MUTED),
    ]
    y = PAD + 56.0
    for panel in panels:
        body.append(_text(PAD, y + 16, panel.title, font_size="14", font_weight="600", fill=INK))
        y += TITLE_H
        top = y
        scale = max([b.value for b in panel.bars] + [panel.goal or 0.0]) or 1.0
        goal_x = None if panel.goal is None else bars_x + bars_w * panel.goal / scale
        for bar in panel.bars:
            width = max(bars_w * bar.value / scale, 1.0)
            colour = HIGHLIGHT if bar.highlight else OTHER
            middle = y + BAR_H / 2 + 4.5
            weight = {"font_weight": "600"} if bar.highlight else {}
            body += [
                _text(bars_x - 8, middle, bar.label, font_size="13", fill=INK, text_anchor="end", **weight),
                f'<rect x="{bars_x}" y="{y:.1f}" width="{width:.1f}" height="{BAR_H}" rx="2" fill="{colour}">'
                f"<title>{escape(f'{bar.label}: {bar.text}')}</title></rect>",
                _text(
                    _value_x(bars_x + width + 6, len(bar.text), goal_x),
                    middle,
                    bar.text,
                    font_size="13",
                    fill=INK,
                    **weight,
                ),
            ]
            y += BAR_H + BAR_GAP
        if goal_x is not None:
            x = goal_x
            body += [
                f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{y - BAR_GAP + 4:.1f}" '
                f'stroke="{GOAL}" stroke-width="1.5" stroke-dasharray="4 3"/>',
                _text(x + 4, y + 8, panel.goal_text, font_size="12", fill=GOAL),
            ]
            y += 14
        y += PANEL_GAP
    height = y - PANEL_GAP + PAD
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" font-family="{FONT}">',
            f"<title>{escape(title)}</title>",
            f"<desc>{escape(subtitle)}</desc>",
            f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{height - 1:.0f}" rx="8" '
            'fill="#ffffff" stroke="#cfd8dc"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def _rows(value: float) -> str:
    return f"{value:,.0f} rows/s"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def ml_serving(data: Mapping[str, Any]) -> str:
    """bench/results/ml_serving.json (bench/ml_serving.py --record) as four panels."""
    placement = data["placement"]

    def name(p: Mapping[str, Any]) -> str:
        return str(p["variant"]) + (" (app)" if p["app_choice"] else "")

    goal = float(data["goal_ms"])
    panels = [
        Panel(
            f"Rows/s, {data['connections']} clients posting {data['batch_rows']}-row batches "
            "(higher is better)",
            tuple(Bar(name(p), p["rows_per_s"], _rows(p["rows_per_s"]), p["app_choice"]) for p in placement),
        ),
        Panel(
            "p99 of GET /health meanwhile (lower is better)",
            (
                *(
                    Bar(name(p), p["health_p99_ms"], _ms(p["health_p99_ms"]), p["app_choice"])
                    for p in placement
                ),
                Bar("no prediction load", data["idle_health_p99_ms"], _ms(data["idle_health_p99_ms"])),
            ),
            goal=goal,
            goal_text=f"goal: {goal:.0f} ms",
        ),
    ]
    for title, rows in (
        ("Batch vs single requests, rows/s", data["requests"]),
        ("Writing the prediction log, rows/s", data["inserts"]),
    ):
        panels.append(
            Panel(
                title,
                tuple(
                    Bar(r["variant"], r["rows_per_s"], _rows(r["rows_per_s"]), i == 0)
                    for i, r in enumerate(rows)
                ),
            )
        )
    subtitle = (
        f"Recorded {data['recorded']} on {data['cores']} cores (load average {data['load_average']:.1f}), "
        f"{data['postgres']}, {data['rounds']} \u00d7 {data['seconds']} s per variant"
    )
    return render("ML serving: where inference runs, and what batching buys", subtitle, panels)


def hot_path(data: Mapping[str, Any]) -> str:
    """bench/results/hot_path.json (bench/hot_path.py --record) as three panels."""
    labels: Mapping[str, str] = data["labels"]
    measures = {(m["variant"], m["route"]): m for m in data["measures"]}
    raw = measures.get(("raw", "by-id"))

    def rps(key: str, route: str = "by-id") -> Bar | None:
        m = measures.get((key, route))
        if m is None:
            return None
        return Bar(labels[key], m["requests_per_s"], f"{m['requests_per_s']:,.0f} req/s", key == "app")

    ladder = [bar for key in (*data["ladder"], "raw") if (bar := rps(key)) is not None]
    goal = float(data["goal_raw_ratio"])
    panels = [
        Panel(
            "The ladder: GET /posts/{id}, requests/s (higher is better)",
            tuple(ladder),
            goal=goal * raw["requests_per_s"] if raw else None,
            goal_text=f"goal: {goal:g} \u00d7 raw asyncpg",
        )
    ]
    ratios = []
    for route, label in (
        ("by-id", "GET /posts/{id}"),
        ("list", "GET /posts"),
        ("auth", "GET /users/{id}, token"),
    ):
        app, base = measures.get(("app", route)), measures.get(("raw", route))
        if app and base and base["requests_per_s"]:
            ratio = app["requests_per_s"] / base["requests_per_s"]
            ratios.append(Bar(label, ratio, f"{ratio:.2f}\u00d7", True))
    if ratios:
        panels.append(
            Panel(
                "The app's throughput as a share of raw asyncpg's, same SQL",
                tuple(ratios),
                goal=goal,
                goal_text=f"goal: {goal:g}\u00d7",
            )
        )
    if data.get("loaded") and data.get("idle"):
        p99 = float(data["goal_p99_ms"])
        panels.append(
            Panel(
                f"p99 of a cheap GET while {data['connections']} connections run 20 ms queries "
                "(lower is better)",
                (
                    Bar("with the slow load", data["loaded"]["p99_ms"], _ms(data["loaded"]["p99_ms"]), True),
                    *(
                        [Bar("... SQLAlchemy's own pool queue", unfair["p99_ms"], _ms(unfair["p99_ms"]))]
                        if (unfair := data.get("loaded_unfair"))
                        else []
                    ),
                    *(
                        [
                            Bar(
                                f"... paced ({data['pace_ms']} ms pauses)",
                                paced["p99_ms"],
                                _ms(paced["p99_ms"]),
                            )
                        ]
                        if (paced := data.get("loaded_paced"))
                        else []
                    ),
                    Bar("alone", data["idle"]["p99_ms"], _ms(data["idle"]["p99_ms"])),
                ),
                goal=p99,
                goal_text=f"goal: {p99:.0f} ms",
            )
        )
    subtitle = (
        f"Recorded {data['recorded']} on {data['cores']} cores (load average {data['load_average']:.1f}), "
        f"{data['postgres']}, 1 uvicorn worker, wrk -c{data['connections']}, "
        f"{data['rounds']} \u00d7 {data['seconds']} s each"
    )
    return render("The hot path: from the original pattern to the app", subtitle, panels)


def drift(data: Mapping[str, Any]) -> str:
    """bench/results/drift.json (bench/drift.py --record): features flagged and PSI per scenario."""
    threshold = float(data["threshold"])
    scenarios = data["scenarios"]

    def bars(key: str, text: Callable[[Mapping[str, Any]], str]) -> tuple[Bar, ...]:
        return tuple(Bar(s["name"], float(s[key]), text(s), s["status"] == "drift") for s in scenarios)

    panels = [
        Panel(
            f"Pixels flagged (PSI \u2265 {threshold:g}), of 64",
            bars("flagged_features", lambda s: f"{s['flagged_features']}"),
        ),
        Panel(
            "Median PSI of the 64 pixels",
            bars("median_feature_psi", lambda s: f"{s['median_feature_psi']:.3f}"),
            goal=threshold,
            goal_text=f"threshold {threshold:g}",
        ),
        Panel(
            "PSI of the predicted labels",
            bars("label_psi", lambda s: f"{s['label_psi']:.3f}"),
            goal=threshold,
            goal_text=f"threshold {threshold:g}",
        ),
    ]
    subtitle = (
        f"{data['model']}, {scenarios[0]['rows']} held-out rows per scenario; recorded {data['recorded']}, "
        f"{data['postgres']}"
    )
    return render("Drift reports: the same digits, altered or not", subtitle, panels)


CELL = 14  # one pixel of a digit in the drift grid
GRID_GAP = 28


def _psi_colour(value: float, watch: float, threshold: float) -> str:
    if value < watch:
        return "#eceff1"
    if value < threshold:
        return "#ffcc80"
    return "#e64a19" if value < 1 else "#b71c1c"


def drift_pixels(data: Mapping[str, Any]) -> str:
    """bench/results/drift.json as one 8x8 grid per scenario: where on the image the PSI is."""
    watch, threshold = float(data["watch"]), float(data["threshold"])
    scenarios = data["scenarios"]
    grid = 8 * CELL
    width = max(WIDTH, 2 * PAD + len(scenarios) * (grid + GRID_GAP) + 60)
    top = PAD + 56.0
    body: list[str] = [
        _text(
            PAD,
            PAD + 16,
            "Where the drift is: PSI of each pixel",
            font_size="17",
            font_weight="600",
            fill=INK,
        ),
        _text(
            PAD,
            PAD + 36,
            f"under {watch:g}: stable; {watch:g} to {threshold:g}: watch; {threshold:g} and over: drift "
            "(darkest: 1 and over)",
            font_size="12",
            fill=MUTED,
        ),
    ]
    column = (width - 2 * PAD) / len(scenarios)
    for i, s in enumerate(scenarios):
        x0 = PAD + i * column + (column - grid) / 2
        for j, value in enumerate(s["feature_psi"]):
            row, col = divmod(j, 8)
            body.append(
                f'<rect x="{x0 + col * CELL:.1f}" y="{top + row * CELL:.1f}" width="{CELL - 1}" '
                f'height="{CELL - 1}" fill="{_psi_colour(float(value), watch, threshold)}">'
                f"<title>{escape(f'pixel {j}: PSI {float(value):.3f}')}</title></rect>"
            )
        label_y = top + grid + 18
        for k, line in enumerate((s["name"], f"{s['flagged_features']} of 64 flagged")):
            body.append(
                _text(x0 + grid / 2, label_y + 16 * k, line, font_size="12", fill=INK, text_anchor="middle")
            )
    height = top + grid + 18 + 16 + PAD
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
            f'viewBox="0 0 {width} {height:.0f}" role="img" font-family="{FONT}">',
            "<title>Where the drift is: PSI of each pixel</title>",
            f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1:.0f}" rx="8" '
            'fill="#ffffff" stroke="#cfd8dc"/>',
            *body,
            "</svg>",
            "",
        ]
    )


@dataclass(frozen=True)
class Chart:
    source: str  # the recorded JSON, relative to the project root
    target: str  # where the built site serves the SVG, relative to the site root
    draw: Callable[[Mapping[str, Any]], str]

    def svg(self, root: Path) -> str:
        return self.draw(json.loads((root / self.source).read_text(encoding="utf-8")))


CHARTS = (
    Chart("bench/results/ml_serving.json", "assets/charts/ml_serving.svg", ml_serving),
    Chart("bench/results/hot_path.json", "assets/charts/hot_path.svg", hot_path),
    Chart("bench/results/drift.json", "assets/charts/drift.svg", drift),
    Chart("bench/results/drift.json", "assets/charts/drift_pixels.svg", drift_pixels),
)
