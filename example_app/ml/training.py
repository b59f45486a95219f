"""Train the digits classifier and write the artifact the app serves (`python3 tasks.py train`).

Data: `sklearn.datasets.load_digits` (1,797 8x8 images, 64 pixel values 0..16, 10 classes), which
ships inside scikit-learn: no download. Model: StandardScaler + MLPClassifier(512, 256), big
enough that a batch of 1,000 rows costs a few milliseconds (the serving patterns have something
to measure) while the file stays well under 1 MB. Exported with skl2onnx to ONNX (see
`artifact.py` for why ONNX); the held-out metrics are computed by the exported graph itself in
onnxruntime, after checking that it agrees with scikit-learn row by row.

Deterministic: fixed seeds, float32 throughout and one BLAS thread while fitting (a threaded
reduction may sum in a different order), so retraining reproduces the manifest's metrics and,
with the same library versions, the same bytes.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from example_app.ml.artifact import (
    DIGITS_MODEL_DIR,
    MANIFEST_NAME,
    DatasetInfo,
    LoadedModel,
    Manifest,
    Metrics,
    ProfileRef,
    TrainingInfo,
    load_model,
    sha256_of,
)
from example_app.ml.profile import PROFILE_NAME, build_profile, encode, reference

MODEL_NAME = "digits"
MODEL_VERSION = "1.0.0"  # bump when the data, the pipeline or its parameters change
RANDOM_STATE = 0
TEST_SIZE = 0.25
HIDDEN_LAYERS = (512, 256)
INPUT_NAME = "pixels"
N_FEATURES = 64
# Pinned so that a newer skl2onnx does not silently change the graph (and the checksum).
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
MODEL_FILE = "model.onnx"
# The drift report's baseline (ml/profile.py): the training rows, and the model's labels for them.
PROFILE_SOURCE = "the training split of sklearn.datasets.load_digits"

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def load_split() -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """The digits data as float32, split stratified with a fixed seed: X_train, X_test, y_train, y_test."""
    data = load_digits()
    x = np.asarray(data.data, dtype=np.float32)
    y = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=RANDOM_STATE
    )
    return x_train, x_test, y_train, y_test


def build_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(hidden_layer_sizes=HIDDEN_LAYERS, max_iter=300, random_state=RANDOM_STATE)),
        ]
    )


# --8<-- [start:train]
def train(output_dir: str | os.PathLike[str] = DIGITS_MODEL_DIR, version: str = MODEL_VERSION) -> Manifest:
    """Fit, export to ONNX, evaluate the exported graph, write model.onnx + manifest.json."""
    x_train, x_test, y_train, y_test = load_split()
    pipeline = build_pipeline()
    with threadpool_limits(limits=1):
        pipeline.fit(x_train, y_train)

    onnx_model = to_onnx(
        pipeline,
        initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))],
        options={"zipmap": False},  # plain tensors out, not a list of {class: probability} maps
        target_opset=TARGET_OPSET,
    )
    # skl2onnx lists the opsets in set order, which changes with PYTHONHASHSEED: sort them, so the
    # same weights always serialize to the same bytes (and the same sha256).
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, opset_version in opsets:
        onnx_model.opset_import.add(domain=domain, version=opset_version)
    data = onnx_model.SerializeToString()

    # The exported graph must answer like the fitted pipeline, row by row.
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    onnx_labels, onnx_proba = session.run(["label", "probabilities"], {INPUT_NAME: x_test})
    sk_labels = pipeline.predict(x_test)
    if not np.array_equal(onnx_labels, sk_labels) or not np.allclose(
        onnx_proba, pipeline.predict_proba(x_test), atol=1e-4
    ):
        raise RuntimeError("the ONNX export does not agree with scikit-learn on the held-out split")

    classes = [int(c) for c in pipeline.classes_]
    (train_labels,) = session.run(["label"], {INPUT_NAME: x_train})
    profile = encode(build_profile(x_train, train_labels, classes, PROFILE_SOURCE))
    manifest = Manifest(
        name=MODEL_NAME,
        version=version,
        format="onnx",
        file=MODEL_FILE,
        sha256=sha256_of(data),
        size_bytes=len(data),
        trained_at=datetime.now(UTC).replace(microsecond=0),
        dataset=DatasetInfo(
            name="sklearn.datasets.load_digits",
            n_samples=len(x_train) + len(x_test),
            test_size=TEST_SIZE,
            split_seed=RANDOM_STATE,
        ),
        input_name=INPUT_NAME,
        n_features=N_FEATURES,
        feature_range=(float(x_train.min()), float(x_train.max())),
        label_output="label",
        probabilities_output="probabilities",
        classes=classes,
        metrics=Metrics(
            accuracy=round(float(accuracy_score(y_test, onnx_labels)), 6),
            macro_f1=round(float(f1_score(y_test, onnx_labels, average="macro")), 6),
            log_loss=round(float(log_loss(y_test, onnx_proba, labels=classes)), 6),
            n_train=len(x_train),
            n_test=len(x_test),
        ),
        training=TrainingInfo(
            estimator=f"StandardScaler + MLPClassifier(hidden_layer_sizes={HIDDEN_LAYERS})",
            random_state=RANDOM_STATE,
            library_versions={
                name: dist_version(name) for name in ("scikit-learn", "skl2onnx", "onnx", "numpy")
            },
            opset=TARGET_OPSET[""],
        ),
        profile=reference(profile),
    )

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # Model first, manifest last (each replaced atomically): a reader in between sees a checksum
    # mismatch and refuses, never a half-written file.
    _write_atomically(folder / MODEL_FILE, data)
    _write_atomically(folder / PROFILE_NAME, profile)
    _write_atomically(folder / MANIFEST_NAME, (manifest.model_dump_json(indent=2) + "\n").encode())
    load_model(folder)  # what we wrote is what the app will accept
    return manifest


# --8<-- [end:train]


# --8<-- [start:add_profile]
def add_profile(directory: str | os.PathLike[str] = DIGITS_MODEL_DIR) -> ProfileRef:
    """Write the reference profile of an artifact trained before profiles existed, and name it in
    its manifest: the model file is read, never rewritten (its bytes and checksum stay)."""
    folder = Path(directory)
    model: LoadedModel = load_model(folder)  # verified, like any model the app loads
    x_train, _, _, _ = load_split()
    profile = encode(
        build_profile(x_train, model.predict_proba(x_train).labels, model.manifest.classes, PROFILE_SOURCE)
    )
    ref = reference(profile)
    manifest = model.manifest.model_copy(update={"profile": ref})
    _write_atomically(folder / PROFILE_NAME, profile)
    _write_atomically(folder / MANIFEST_NAME, (manifest.model_dump_json(indent=2) + "\n").encode())
    return ref


# --8<-- [end:add_profile]


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def summary(manifest: Manifest, directory: str | os.PathLike[str]) -> str:
    m = manifest.metrics
    return (
        f"{manifest.name} {manifest.version}: {manifest.training.estimator}\n"
        f"  held-out accuracy {m.accuracy:.4f}  macro F1 {m.macro_f1:.4f}  log loss {m.log_loss:.4f}"
        f"  (train {m.n_train}, test {m.n_test} rows)\n"
        f"  {Path(directory) / manifest.file}: {manifest.size_bytes:,} bytes, sha256 {manifest.sha256}"
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DIGITS_MODEL_DIR
    print(summary(train(output), output))


if __name__ == "__main__":
    main()
