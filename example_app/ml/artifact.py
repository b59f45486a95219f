"""Load the model artifact: a manifest, a checksum check, then an onnxruntime session (ML10).

Why ONNX, not pickle/joblib/skops: unpickling runs whatever code the bytes name, so a swapped file
is code execution; an ONNX file is a protobuf graph of a fixed set of operators, and loading it
runs no Python. onnxruntime releases the GIL while it computes, so predictions in the threadpool
leave the event loop free, and the app needs no scikit-learn at run time (only training does).
skops.io refuses unlisted types but still loads scikit-learn, whose predict is several times
slower on small batches (bench/results/model_artifact.txt).

`load_model` never raises anything but `ModelLoadError` for a bad artifact, with one line that
says what is wrong, so the app can log it and keep readiness at 503.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

DIGITS_MODEL_DIR = Path(__file__).resolve().parent / "artifacts" / "digits"
MANIFEST_NAME = "manifest.json"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ModelLoadError(Exception):
    """The artifact is missing, unreadable or not the one the manifest describes (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(part.strip() for part in message.splitlines() if part.strip()))


# --8<-- [start:manifest]
class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetInfo(_Frozen):
    name: str  # where the data comes from, e.g. "sklearn.datasets.load_digits"
    n_samples: int
    test_size: float  # share of the samples held out for the metrics, split stratified
    split_seed: int


class Metrics(_Frozen):
    accuracy: float  # on the held-out split, computed by the ONNX model itself
    macro_f1: float
    log_loss: float
    n_train: int
    n_test: int


class ProfileRef(_Frozen):
    """The reference profile of the training data (drift's baseline), checked like the model."""

    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\.json$")]  # a name, no path
    sha256: Sha256  # of the profile file's bytes


class TrainingInfo(_Frozen):
    estimator: str  # a readable description of the pipeline
    random_state: int
    library_versions: dict[str, str]  # scikit-learn, skl2onnx, onnx, numpy at training time
    opset: int  # the ONNX operator set the graph targets


class Manifest(_Frozen):
    """manifest.json, next to the model file: what the artifact is and how well it does."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    format: Literal["onnx"]
    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\.onnx$")]  # a name, no path
    sha256: Sha256  # of the model file's bytes
    size_bytes: Annotated[int, Field(gt=0)]
    trained_at: AwareDatetime
    dataset: DatasetInfo
    input_name: str  # the graph's one input: float32, shape [N, n_features]
    n_features: Annotated[int, Field(gt=0)]
    feature_range: tuple[float, float]  # the values seen in training (digits: 0..16 per pixel)
    label_output: str  # int64 [N]: the predicted class of each row
    probabilities_output: str  # float32 [N, len(classes)], columns in the order of `classes`
    classes: Annotated[list[int], Field(min_length=2)]
    metrics: Metrics
    training: TrainingInfo
    profile: ProfileRef | None = None  # profile.json; without one, no drift report


# --8<-- [end:manifest]


class Prediction(NamedTuple):
    labels: npt.NDArray[np.int64]  # shape (n,): the predicted class of each row
    probabilities: npt.NDArray[np.float32]  # shape (n, len(classes)), rows sum to 1


class LoadedModel:
    """A verified artifact and its onnxruntime session; safe to share between threads.

    `InferenceSession.run` may be called from many threads at once on one session (onnxruntime
    documents this), and nothing here mutates state after loading, so the app can hold one
    instance on app state and call `predict_proba` from its threadpool.
    """

    __slots__ = ("directory", "load_seconds", "manifest", "session")

    def __init__(
        self, manifest: Manifest, session: ort.InferenceSession, directory: Path, load_seconds: float
    ) -> None:
        self.manifest = manifest
        self.session = session
        self.directory = directory
        self.load_seconds = load_seconds

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def trained_at(self) -> datetime:
        return self.manifest.trained_at

    # --8<-- [start:predict]
    def predict_proba(self, x: npt.ArrayLike) -> Prediction:
        """Predict a batch in one vectorised call: rows of `n_features` finite numbers in, one
        label and one probability row per input row out, in input order. Releases the GIL."""
        m = self.manifest
        batch = np.ascontiguousarray(x, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != m.n_features:
            raise ValueError(f"expected an array of shape (n, {m.n_features}), got {batch.shape}")
        if not np.isfinite(batch).all():
            raise ValueError("the input holds NaN or infinite values")
        if batch.shape[0] == 0:
            return Prediction(np.empty(0, np.int64), np.empty((0, len(m.classes)), np.float32))
        labels, probabilities = self.session.run(
            [m.label_output, m.probabilities_output], {m.input_name: batch}
        )
        return Prediction(np.asarray(labels, np.int64), np.asarray(probabilities, np.float32))

    # --8<-- [end:predict]

    def __repr__(self) -> str:
        return f"<LoadedModel {self.name} {self.version} sha256={self.sha256[:12]}>"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --8<-- [start:load]
def load_model(
    directory: str | os.PathLike[str] = DIGITS_MODEL_DIR,
    *,
    intra_op_threads: int = 1,
    expected_sha256: str | None = None,
) -> LoadedModel:
    """Read `directory`/manifest.json, verify the model file's sha256 (and that it is
    `expected_sha256`, the registry's, when given), then open it in onnxruntime.

    One intra-op thread by default: the app runs predictions concurrently in its threadpool, so
    each call computing on one core keeps the cores for the concurrent calls (and the event loop)
    instead of every call spawning a pool of spinning threads that fight over the same 2 cores.
    """
    started = time.perf_counter()
    folder = Path(directory)
    manifest = _read_manifest(folder / MANIFEST_NAME)
    path = folder / manifest.file
    if expected_sha256 is not None and manifest.sha256 != expected_sha256:
        raise ModelLoadError(
            f"model checksum mismatch: {folder / MANIFEST_NAME} names sha256 {manifest.sha256[:12]}..., "
            f"the registry expects {expected_sha256[:12]}...; refusing to load"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"model file missing: {path} (named by {folder / MANIFEST_NAME})") from None
    except OSError as exc:
        raise ModelLoadError(f"model file unreadable: {path}: {exc.strerror or exc}") from None
    # The bytes we hash are the bytes onnxruntime gets: the file is read once, so it cannot be
    # swapped between the check and the load.
    actual = sha256_of(data)
    if actual != manifest.sha256:
        raise ModelLoadError(
            f"model checksum mismatch: {path} has sha256 {actual[:12]}..., "
            f"the manifest expects {manifest.sha256[:12]}...; refusing to load"
        )
    session = _open_session(data, path, intra_op_threads)
    _check_graph(session, manifest, path)
    return LoadedModel(manifest, session, folder, time.perf_counter() - started)


# --8<-- [end:load]


def _read_manifest(path: Path) -> Manifest:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"model manifest missing: {path}") from None
    except OSError as exc:
        raise ModelLoadError(f"model manifest unreadable: {path}: {exc.strerror or exc}") from None
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ModelLoadError(f"model manifest unreadable: {path}: {where}: {first['msg']}{more}") from None


def _open_session(data: bytes, path: Path, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; ours are raised, not logged by onnxruntime
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ModelLoadError(f"model not loadable by onnxruntime: {path}: {_first_line(exc)}") from None


def _check_graph(session: ort.InferenceSession, m: Manifest, path: Path) -> None:
    """The graph takes what the manifest says it takes and answers with the outputs it names."""
    inputs = session.get_inputs()
    want = f"one input {m.input_name!r} float32 [N, {m.n_features}]"
    if len(inputs) != 1:
        raise ModelLoadError(f"model graph input mismatch: {path} has {len(inputs)} inputs; expected {want}")
    graph_input = inputs[0]
    shape: list[Any] = list(graph_input.shape)
    batch_is_dynamic = len(shape) == 2 and not isinstance(shape[0], int)
    if (
        graph_input.name != m.input_name
        or graph_input.type != "tensor(float)"
        or len(shape) != 2
        or shape[1] != m.n_features
        or not batch_is_dynamic
    ):
        raise ModelLoadError(
            f"model graph input mismatch: {path} takes {graph_input.name!r} {graph_input.type} "
            f"{shape}; expected {want}"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    for name in (m.label_output, m.probabilities_output):
        if name not in outputs:
            raise ModelLoadError(
                f"model graph output missing: {path} has no output {name!r} (has {sorted(outputs)})"
            )
    # One row through the graph: a broken graph fails here, not on the first request, and the
    # first request does not pay for onnxruntime's lazy allocations.
    try:
        labels, probabilities = session.run(
            [m.label_output, m.probabilities_output],
            {m.input_name: np.zeros((1, m.n_features), np.float32)},
        )
    except Exception as exc:
        raise ModelLoadError(f"model does not run: {path}: {_first_line(exc)}") from None
    if np.shape(labels) != (1,) or np.shape(probabilities) != (1, len(m.classes)):
        raise ModelLoadError(
            f"model graph output mismatch: {path} answers labels {np.shape(labels)} and probabilities "
            f"{np.shape(probabilities)} for one row; expected (1,) and (1, {len(m.classes)})"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
