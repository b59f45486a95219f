"""The model artifact: ONNX against joblib, load time and latency by batch size, in one run.
Explained on docs/ml/artifact.md.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from bench import harness as h
from example_app.ml.artifact import DIGITS_MODEL_DIR, load_model, sha256_of

BATCH_SIZES, ROUNDS, LOAD_REPEATS = (1, 32, 1000), 5, 20
REPEATS = {1: 2000, 32: 1000, 1000: 200}
BASELINE = "onnx, 1 thread"


def median_seconds(call: Callable[[], object]) -> float:
    return statistics.median(h.timed(call, LOAD_REPEATS, warmup=1))


def measure(scale: float = 1.0) -> dict[str, Any]:
    """Every figure; `scale` shortens the repeats (a smoke test)."""
    import joblib  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits

    from example_app.ml.training import build_pipeline, load_split

    onnx_file = DIGITS_MODEL_DIR / "model.onnx"
    started = time.perf_counter()
    model = load_model()
    loads = {"first call in the process": time.perf_counter() - started}
    loads["onnx: load_model (sha256 + session)"] = median_seconds(load_model)
    loads["  of which read + sha256"] = median_seconds(lambda: sha256_of(onnx_file.read_bytes()))
    x_train, x_test, y_train, _ = load_split()
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        pipeline = build_pipeline().fit(x_train, y_train)
        joblib.dump(pipeline, pickled := Path(tmp) / "model.joblib")
        loads["sklearn: joblib.load (unpickles)"] = median_seconds(lambda: joblib.load(pickled))
        sizes = {"onnx": onnx_file.stat().st_size, "joblib": pickled.stat().st_size}
    model_2 = load_model(intra_op_threads=2)
    variants: dict[str, Callable[[Any], object]] = {
        BASELINE: model.predict_proba,
        "onnx, 2 threads": model_2.predict_proba,
        "sklearn via joblib, 1 thread": pipeline.predict_proba,
    }
    latency = []
    with threadpool_limits(limits=1):  # one BLAS thread for scikit-learn; onnxruntime has its own
        for n in BATCH_SIZES:
            x = np.resize(x_test, (n, x_test.shape[1])).astype(np.float32)  # repeats rows past 450
            times: dict[str, list[float]] = {name: [] for name in variants}
            repeats = max(int(REPEATS[n] * scale) // ROUNDS, 1)
            for _ in range(ROUNDS):
                for name, predict in variants.items():  # each warmed up after the others ran
                    times[name] += h.timed(partial(predict, x), repeats, warmup=1)
            latency += [
                {"variant": name, "batch": n, "seconds": statistics.median(t)} for name, t in times.items()
            ]
    m = model.manifest
    versions = ", ".join(f"{p} {version(p)}" for p in ("onnxruntime", "scikit-learn", "numpy"))
    about = f"{m.name} {m.version}, {m.training.estimator}, held-out accuracy {m.metrics.accuracy:.4f}"
    python = f"{platform.python_implementation()} {platform.python_version()}, {versions}"
    return {"model": about, "python": python, "loads": loads, "sizes": sizes, "latency": latency}


def report(data: dict[str, Any]) -> str:
    files = {"onnx": data["sizes"]["onnx"], "sklearn": data["sizes"]["joblib"]}  # the file each load reads
    loads = [
        (name, seconds * 1e3, f"{files[kind]:,}" if (kind := name.split(":")[0]) in files else "")
        for name, seconds in data["loads"].items()
    ]
    base = {r["batch"]: r["seconds"] for r in data["latency"] if r["variant"] == BASELINE}
    order = list(dict.fromkeys(r["variant"] for r in data["latency"]))
    by_variant = sorted(data["latency"], key=lambda r: (order.index(r["variant"]), r["batch"]))
    latency = [
        (r["variant"], r["batch"], r["seconds"] * 1e3, r["seconds"] / r["batch"] * 1e6,
         r["batch"] / r["seconds"], base[r["batch"]] / r["seconds"])
        for r in by_variant
    ]  # fmt: skip
    spec = ["predict_proba (median):<{}", "batch", "ms/call:{:.3f}", "us/row:{:.2f}"]
    return "\n".join([
        f"Model artifact: {data['model']}; {data['python']}",
        "",
        *h.columns([f"load (median of {LOAD_REPEATS}):<{{}}", "ms:{:.2f}", "file bytes"], loads),
        "",
        *h.columns([*spec, "rows/s:{:,.0f}", "vs onnx:{:.2f}x"], latency),
    ])  # fmt: skip


main = h.scenario("model_artifact", measure, report)
