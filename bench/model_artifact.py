"""The model artifact, measured: load time and per-row latency by batch size, side by side in one run.

Variants: the committed ONNX artifact through `load_model` (what the app serves, one intra-op
thread), the same with two intra-op threads, and, for contrast, the same scikit-learn pipeline
retrained here and stored with joblib (the pickle-based format the app refuses; one BLAS thread).
Each latency is the median of repeated `predict_proba` calls on rows of the digits data.

    venv/bin/python -m bench.model_artifact [--record]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import numpy.typing as npt

from example_app.ml.artifact import DIGITS_MODEL_DIR, load_model, sha256_of

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "bench" / "results" / "model_artifact.txt"
BATCH_SIZES = (1, 32, 1000)
REPEATS = {1: 2000, 32: 1000, 1000: 200}
LOAD_REPEATS = 20
ROUNDS = 5
BASELINE = "onnx, 1 thread"


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rows(n: int) -> npt.NDArray[np.float32]:
    from example_app.ml.training import load_split

    _, x_test, _, _ = load_split()
    return np.resize(x_test, (n, x_test.shape[1])).astype(np.float32)  # repeats rows past 450


def measure() -> str:
    import joblib  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits

    from example_app.ml.training import build_pipeline, load_split

    onnx_file = DIGITS_MODEL_DIR / "model.onnx"
    data = onnx_file.read_bytes()
    started = time.perf_counter()
    model = load_model()
    first_load = time.perf_counter() - started
    load_onnx = _median_seconds(load_model, LOAD_REPEATS)
    check = _median_seconds(lambda: sha256_of(onnx_file.read_bytes()), LOAD_REPEATS)
    model_2 = load_model(intra_op_threads=2)

    x_train, _, y_train, _ = load_split()
    with threadpool_limits(limits=1):
        pipeline = build_pipeline().fit(x_train, y_train)
    with tempfile.TemporaryDirectory() as tmp:
        pickled = Path(tmp) / "model.joblib"
        joblib.dump(pipeline, pickled)
        pickled_size = pickled.stat().st_size
        load_pickle = _median_seconds(lambda: joblib.load(pickled), LOAD_REPEATS)

    variants: dict[str, Callable[[npt.NDArray[np.float32]], object]] = {
        BASELINE: model.predict_proba,
        "onnx, 2 threads": model_2.predict_proba,
        "sklearn via joblib, 1 thread": pipeline.predict_proba,
    }
    # Blocks of calls per variant (a server calls one model over and over: its weights stay in
    # cache), the blocks taken in turns over ROUNDS rounds so that whatever else the machine does
    # weighs on every variant alike. One BLAS thread for scikit-learn (onnxruntime has its own).
    latency: dict[tuple[str, int], float] = {}
    with threadpool_limits(limits=1):
        for n in BATCH_SIZES:
            x = _rows(n)
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(ROUNDS):
                for name, predict in variants.items():
                    predict(x)  # warm up after the other variants ran
                    for _ in range(REPEATS[n] // ROUNDS):
                        started = time.perf_counter()
                        predict(x)
                        times[name].append(time.perf_counter() - started)
            for name, measured in times.items():
                latency[(name, n)] = statistics.median(measured)

    m = model.manifest
    lines = [
        f"Model artifact: {m.name} {m.version}, {m.training.estimator}, "
        f"held-out accuracy {m.metrics.accuracy:.4f}",
        "",
        f"{'load (median of ' + str(LOAD_REPEATS) + ')':34} {'ms':>8} {'file bytes':>11}",
        f"{'onnx: load_model (sha256 + session)':34} {load_onnx * 1e3:8.2f} {len(data):11,}",
        f"{'  of which read + sha256':34} {check * 1e3:8.2f}",
        f"{'  first call in the process':34} {first_load * 1e3:8.2f}",
        f"{'sklearn: joblib.load (unpickles)':34} {load_pickle * 1e3:8.2f} {pickled_size:11,}",
        "",
        f"{'predict_proba (median)':30} {'batch':>6} {'ms/call':>9} {'us/row':>8} {'rows/s':>10}  vs onnx",
    ]
    for name in variants:
        for n in BATCH_SIZES:
            seconds = latency[(name, n)]
            ratio = latency[(BASELINE, n)] / seconds
            per_row = seconds / n * 1e6
            lines.append(
                f"{name:30} {n:6} {seconds * 1e3:9.3f} {per_row:8.2f} {n / seconds:10,.0f}  {ratio:6.2f}x"
            )
    return "\n".join(lines)


def main(record: bool = False) -> None:
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    table = measure()
    print(table)
    if record:
        versions = ", ".join(f"{p} {dist_version(p)}" for p in ("onnxruntime", "scikit-learn", "numpy"))
        header = (
            f"# python -m bench.model_artifact --record, {date.today()}, {os.cpu_count()} cores, "
            f"{platform.python_implementation()} {platform.python_version()}, {versions}, "
            f"load average {load_before:.1f} at start"
        )
        marker = "# --8<" + "-- [{}:model_artifact]\n"  # in parts: this file holds no section
        RECORD.write_text(
            "# The figures the guide shows for the model artifact; rewrite with --record.\n"
            f"{marker.format('start')}{header}\n{table}\n{marker.format('end')}"
        )
        print(f"\nrecorded in {RECORD.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--record", action="store_true", help=f"also write {RECORD.relative_to(ROOT)}")
    main(parser.parse_args().record)
