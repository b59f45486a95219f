"""Model artifacts for tests: a copy of the committed one under another version, or a tiny model
with another contract (16 features, 2x2 blocks of the digits summed: 0..64), trained in a second."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from example_app.ml.artifact import DIGITS_MODEL_DIR, MANIFEST_NAME, Manifest, Metrics, load_model, sha256_of
from example_app.ml.training import TARGET_OPSET


def copy_of_digits(folder: Path, version: str) -> Manifest:
    """The committed artifact in `folder`, its manifest saying `version` (same bytes, same sha256)."""
    shutil.copytree(DIGITS_MODEL_DIR, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["version"] = version
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    return load_model(folder).manifest


def blocks(pixels: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """8x8 digits -> 4x4 sums of 2x2 blocks: 16 features in 0..64."""
    rows = np.asarray(pixels, np.float32).reshape(-1, 4, 2, 4, 2)
    summed: npt.NDArray[np.float32] = rows.sum(axis=(2, 4)).reshape(-1, 16)
    return summed


def tiny_blocks_model(folder: Path, version: str) -> Manifest:
    """A logistic regression on 16 block sums: another contract than the digits model's."""
    data = load_digits()
    x, y = blocks(data.data), np.asarray(data.target, np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(x, y)
    contract = {"input_name": "blocks", "n_features": 16, "feature_range": (0.0, 64.0)}
    return _save(folder, version, model, x, y, **contract)


def coarse_digits_model(folder: Path, version: str) -> Manifest:
    """The digits model's contract (64 pixels, 0..16), learnt from 100 digits only: a candidate
    that agrees with the committed model on most rows and not on all."""
    data = load_digits()
    x, y = np.asarray(data.data[:100], np.float32), np.asarray(data.target[:100], np.int64)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1_000)).fit(x, y)
    return _save(folder, version, model, x, y)


def _save(
    folder: Path, version: str, model: Pipeline, x: npt.NDArray[Any], y: npt.NDArray[Any], **contract: Any
) -> Manifest:
    """`model` as an artifact in `folder`: ONNX, and the committed manifest with `version`, the
    new bytes' checksum, no drift baseline, and `contract` where it differs."""
    committed = Manifest.model_validate_json((DIGITS_MODEL_DIR / MANIFEST_NAME).read_bytes())
    input_name = contract.get("input_name", committed.input_name)
    n_features = contract.get("n_features", committed.n_features)
    onnx = to_onnx(
        model,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        options={"zipmap": False},
        target_opset=TARGET_OPSET,
    )
    data_bytes = onnx.SerializeToString()
    manifest = committed.model_copy(
        update={
            **contract,
            "version": version,
            "sha256": sha256_of(data_bytes),
            "size_bytes": len(data_bytes),
            "trained_at": datetime.now(UTC).replace(microsecond=0),
            "profile": None,  # no drift baseline for these
            "metrics": Metrics(
                accuracy=float(model.score(x, y)), macro_f1=0.0, log_loss=0.0, n_train=len(x), n_test=0
            ),
        }
    )
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(data_bytes)
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
    return load_model(folder).manifest
