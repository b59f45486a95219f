"""The model artifact (ML10): reproducible training, a checksum checked before loading, one-line errors.

No database here; the model is loaded from files only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from example_app.ml.artifact import (
    DIGITS_MODEL_DIR,
    MANIFEST_NAME,
    LoadedModel,
    Manifest,
    ModelLoadError,
    load_model,
    sha256_of,
)
from example_app.ml.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]


def committed_manifest() -> Manifest:
    return Manifest.model_validate_json((DIGITS_MODEL_DIR / MANIFEST_NAME).read_bytes())


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model()


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    shutil.copytree(DIGITS_MODEL_DIR, folder)
    return folder


def load_error(folder: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_model(folder)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --8<-- [start:retrain]
# Training's floating-point sums depend on the CPU's instruction set (SIMD width, FMA): another
# machine retrains the same architecture to the same predictions, not to the same bytes. So the
# committed metrics are met within what one test row can move, and the retrained model answers
# like the committed one; byte equality is asserted only where it holds, on one machine.
@pytest.mark.pattern("ML10", "TT04", "LC05")
def test_retraining_reproduces_the_committed_metrics(tmp_path: Path, model: LoadedModel) -> None:
    from example_app.ml.training import load_split, train

    committed = committed_manifest()
    retrained = train(tmp_path)

    one_row = 1 / committed.metrics.n_test  # the smallest change a metric over the test split can make
    assert retrained.metrics.accuracy == pytest.approx(committed.metrics.accuracy, abs=one_row)
    assert retrained.metrics.macro_f1 == pytest.approx(committed.metrics.macro_f1, abs=one_row)
    assert retrained.metrics.log_loss == pytest.approx(committed.metrics.log_loss, abs=1e-3)
    assert (retrained.metrics.n_train, retrained.metrics.n_test) == (
        committed.metrics.n_train,
        committed.metrics.n_test,
    )
    contract = {"name", "version", "dataset", "n_features", "classes", "format"}
    assert retrained.model_dump(include=contract) == committed.model_dump(include=contract)
    assert retrained.training.estimator == committed.training.estimator
    again = load_model(tmp_path)  # its checksum is verified on load, like the committed one's
    _, x_test, _, _ = load_split()
    ours, theirs = again.predict_proba(x_test), model.predict_proba(x_test)
    assert (ours.labels != theirs.labels).sum() <= 1
    assert np.abs(ours.probabilities - theirs.probabilities).max() < 0.05
    # The drift report's baseline (LC05) is retrained too: the data's bin counts exactly, the
    # model's labels for the training rows within what one changed answer can move.
    profile, committed_profile = load_profile(again), load_profile(model)
    assert profile is not None
    assert committed_profile is not None
    assert profile.feature_counts == committed_profile.feature_counts
    assert np.abs(np.subtract(profile.label_counts, committed_profile.label_counts)).sum() <= 2


@pytest.mark.system("two trainings of the model")
@pytest.mark.pattern("ML10", "TT04")
def test_training_twice_on_one_machine_gives_the_same_bytes(tmp_path: Path) -> None:
    """Where byte equality holds: the same libraries on the same machine (fixed seeds, one thread)."""
    from example_app.ml.training import train

    first, second = train(tmp_path / "a"), train(tmp_path / "b")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a" / first.file).read_bytes() == (tmp_path / "b" / second.file).read_bytes()


# --8<-- [end:retrain]


@pytest.mark.pattern("ML10")
def test_the_committed_artifact_loads_and_matches_its_checksum(model: LoadedModel) -> None:
    manifest = committed_manifest()
    data = (DIGITS_MODEL_DIR / manifest.file).read_bytes()
    assert sha256_of(data) == manifest.sha256 == model.sha256
    assert len(data) == manifest.size_bytes < 2 * 1024 * 1024
    assert (model.name, model.version, model.manifest.format) == ("digits", manifest.version, "onnx")
    assert model.trained_at.tzinfo is not None
    assert model.manifest.metrics.accuracy > 0.95


# --8<-- [start:tampered]
@pytest.mark.pattern("ML10")
def test_a_tampered_artifact_refuses_to_load(artifact_copy: Path) -> None:
    model_file = artifact_copy / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in a weight: onnxruntime would load it happily
    model_file.write_bytes(bytes(data))

    message = load_error(artifact_copy)

    assert "checksum mismatch" in message
    assert committed_manifest().sha256[:12] in message
    assert sha256_of(bytes(data))[:12] in message


# --8<-- [end:tampered]


@pytest.mark.pattern("ML10")
@pytest.mark.parametrize(
    ("missing", "expected"),
    [("model.onnx", "model file missing"), (MANIFEST_NAME, "model manifest missing")],
)
def test_a_missing_file_refuses_to_load(artifact_copy: Path, missing: str, expected: str) -> None:
    (artifact_copy / missing).unlink()
    message = load_error(artifact_copy)
    assert expected in message
    assert str(artifact_copy / missing) in message


def rewrite_manifest(folder: Path, **changes: object) -> None:
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.pattern("ML10")
def test_an_unreadable_manifest_refuses_to_load(artifact_copy: Path) -> None:
    (artifact_copy / MANIFEST_NAME).write_text("{not json")
    assert "model manifest unreadable" in load_error(artifact_copy)

    shutil.copy(DIGITS_MODEL_DIR / MANIFEST_NAME, artifact_copy / MANIFEST_NAME)
    rewrite_manifest(artifact_copy, trained_at="2026-01-01T00:00:00")  # no time zone
    message = load_error(artifact_copy)
    assert "model manifest unreadable" in message
    assert "trained_at" in message

    shutil.copy(DIGITS_MODEL_DIR / MANIFEST_NAME, artifact_copy / MANIFEST_NAME)
    rewrite_manifest(artifact_copy, file="../../elsewhere.onnx")  # a name, never a path
    assert ": file: String should match pattern" in load_error(artifact_copy)


@pytest.mark.pattern("ML10")
def test_a_graph_with_another_input_shape_refuses_to_load(artifact_copy: Path) -> None:
    rewrite_manifest(artifact_copy, n_features=63)
    message = load_error(artifact_copy)
    assert "model graph input mismatch" in message
    assert "[N, 63]" in message


@pytest.mark.pattern("ML10")
def test_bytes_that_are_not_onnx_refuse_to_load(artifact_copy: Path) -> None:
    junk = b"\x80\x04not a model, whatever the manifest says"
    (artifact_copy / "model.onnx").write_bytes(junk)
    rewrite_manifest(artifact_copy, sha256=sha256_of(junk), size_bytes=len(junk))
    assert "model not loadable by onnxruntime" in load_error(artifact_copy)


@pytest.mark.pattern("ML10")
def test_predictions_reproduce_the_manifest_accuracy(model: LoadedModel) -> None:
    from example_app.ml.training import load_split

    _, x_test, _, y_test = load_split()
    labels, probabilities = model.predict_proba(x_test)

    assert labels.shape == (len(x_test),)
    assert probabilities.shape == (len(x_test), len(model.manifest.classes))
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(labels, np.asarray(model.manifest.classes)[probabilities.argmax(axis=1)])
    assert round(float((labels == y_test).mean()), 6) == model.manifest.metrics.accuracy
    # One vectorised call answers in input order, like row-by-row calls.
    assert np.array_equal(labels[:20], [model.predict_proba(row[None, :]).labels[0] for row in x_test[:20]])


@pytest.mark.pattern("ML10")
def test_predict_refuses_a_wrong_shape_or_non_finite_input(model: LoadedModel) -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        model.predict_proba(np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict_proba(np.full((1, 64), np.inf, np.float32))
    empty = model.predict_proba(np.zeros((0, 64), np.float32))
    assert empty.labels.shape == (0,)
    assert empty.probabilities.shape == (0, 10)


@pytest.mark.pattern("ML10")
def test_one_model_is_shared_between_threads(model: LoadedModel) -> None:
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 16, (50, 64)).astype(np.float32) for _ in range(16)]
    expected = [model.predict_proba(b).probabilities for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda b: model.predict_proba(b).probabilities, batches))
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))


@pytest.mark.pattern("ML10")
def test_loading_and_predicting_never_import_scikit_learn() -> None:
    code = (
        "import sys, numpy as np\n"
        "import example_app.ml.artifact as a\n"
        "m = a.load_model(a.DIGITS_MODEL_DIR)\n"
        "m.predict_proba(np.zeros((2, 64), np.float32))\n"
        "leaked = sorted({n.split('.')[0] for n in sys.modules} & {'sklearn', 'skl2onnx', 'onnx', 'scipy'})\n"
        "assert not leaked, leaked\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
