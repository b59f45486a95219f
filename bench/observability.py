"""What observability costs per request (OB07): the app with nothing on, with metrics, with traces
at 1 % and 100 %, in one run. Explained on docs/observability.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import harness as h

POSTS = 1_000
TOKEN = "bench-metrics-reader-" + "x" * 24
GOAL = 0.95  # each step keeps at least this share of the throughput of the step before it
STEPS = [("metrics", "off"), ("metrics + traces 1 %", "metrics")]  # (a variant, its base): the budgets
ROWS = [{"pixels": [float((i * 7 + j) % 17) for j in range(64)]} for i in range(16)]  # pixels in 0..16


def variants(sink: str) -> list[h.Variant]:
    metrics = {"METRICS_TOKEN": TOKEN}

    def traced(ratio: str) -> dict[str, str]:
        return {
            **metrics,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink}/v1/traces",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": ratio,
        }

    return [
        h.Variant("off"),
        h.Variant("metrics", metrics),
        h.Variant("metrics + traces 1 %", traced("0.01")),
        h.Variant("metrics + traces 100 %", traced("1.0")),
    ]


def loads(token: str) -> dict[str, h.Load]:
    return {
        "by-id": h.get("GET /posts/{id}", f'"{h.PREFIX}/posts/" .. math.random(1, {POSTS})'),
        "predict": h.post("POST /predictions (one row)", f"{h.PREFIX}/predictions", ROWS, token),
    }


class _Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that takes every export and drops it; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def verdicts(measures: list[h.Measure]) -> list[str]:
    got = {(m.variant, m.load): m.requests_per_s for m in measures}
    lines = []
    for load in ("by-id", "predict"):
        for variant, base in STEPS:
            if (value := got.get((variant, load))) and (before := got.get((base, load))):
                share = value / before
                verdict = "within" if share >= GOAL else "over"
                lines.append(
                    f"{load}: {variant} keeps {share:.2f}x of {base}'s throughput "
                    f"({verdict} the {1 - GOAL:.0%} budget)"
                )
    return lines


def run(seconds: int = 8, connections: int = 32, rounds: int = 4, warmup: int = 2) -> dict[str, Any]:
    with h.database() as db, otlp_sink() as sink:
        h.seed_posts(db, users=100, posts=POSTS)
        (token,) = h.bearer(db, [1])
        # Every prediction is admitted: the comparison is of the work per request, not of shedding.
        env = db.env(PREDICTION_MAX_IN_PROGRESS="1000")
        # The server on a core of its own, and four rounds: a 5 % budget is smaller than what wrk
        # and the server take from each other on shared cores, and than one round's spread.
        measures = h.compare(variants(sink), loads(token), env, seconds=seconds, connections=connections,
                             rounds=rounds, warmup=warmup, pin=True)  # fmt: skip
        run = {"rounds": rounds, "seconds": seconds, "connections": connections, "goal": GOAL, "steps": STEPS,
               "pinned": h.split_cpus() is not None}  # fmt: skip
        return {**h.results(db, measures, loads(token), **run), "spans_exported": _Sink.received > 0}


def report(data: dict[str, Any]) -> str:
    measures = h.measured(data)
    setup = (
        f"wrk -c{data['connections']}, {data['rounds']} rounds of {data['seconds']} s per variant and load"
    )
    if data.get("pinned"):
        setup += "; each server on a core of its own, wrk on the other"
    return "\n".join([setup, h.table(measures, "off", data["loads"]), "", *verdicts(measures)])


main = h.scenario("observability", run, report)
