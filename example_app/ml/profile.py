"""The reference profile (LC05): how the training data looked, per feature and per predicted label.

Training writes it next to the model (`profile.json`, its sha256 in the manifest, checked like the
model's before it is used); the drift report (services/drift.py) compares the prediction log's
recent rows with it. Counts, not shares: integers serialize to the same bytes on every machine.

The bins: a digits pixel is an integer grey level 0..16, most pixels are 0, and some are 0 in every
training image. Quantile edges, the textbook choice for PSI, collapse on such data (a constant
feature gets one bin, and then nothing it does later can move its PSI). So every feature shares one
set of edges on the pixels' own scale: 0 | 1-3 | 4-7 | 8-11 | 12-16. Five bins keep the sampling
noise of a few hundred rows well under the thresholds; a feature that is always 0 in training keeps
a bin of its own for "ink where there never was any".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from example_app.ml.artifact import LoadedModel, ProfileRef, sha256_of

PROFILE_NAME = "profile.json"

# --8<-- [start:bins]
# PostgreSQL's width_bucket(value, thresholds) convention: bin 0 below the first threshold, bin i
# for thresholds[i-1] <= value < thresholds[i], the last bin from the last threshold up. numpy's
# searchsorted(side="right") numbers them the same way, so the SQL and the profile agree.
BIN_THRESHOLDS = (1.0, 4.0, 8.0, 12.0)
N_BINS = len(BIN_THRESHOLDS) + 1


def bin_counts(x: npt.ArrayLike, thresholds: tuple[float, ...] = BIN_THRESHOLDS) -> npt.NDArray[np.int64]:
    """Rows of features in, one row of bin counts per feature out: shape (n_features, n_bins)."""
    rows = np.asarray(x, dtype=np.float64)
    bins = np.searchsorted(np.asarray(thresholds), rows, side="right")  # same shape as rows
    n_bins = len(thresholds) + 1
    return np.stack([np.bincount(bins[:, j], minlength=n_bins) for j in range(rows.shape[1])])


# --8<-- [end:bins]


# --8<-- [start:profile]
class ReferenceProfile(BaseModel):
    """profile.json: the training rows' bin counts per feature and their predicted-label counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # which rows were counted
    n_rows: int
    bin_thresholds: list[float]  # width_bucket's thresholds: len + 1 bins
    feature_counts: list[list[int]]  # [feature][bin]
    classes: list[int]
    label_counts: list[int]  # the model's predicted labels on the same rows, in the order of classes


def build_profile(
    x: npt.ArrayLike, labels: npt.ArrayLike, classes: list[int], source: str
) -> ReferenceProfile:
    predicted = np.asarray(labels, dtype=np.int64)
    return ReferenceProfile(
        source=source,
        n_rows=len(predicted),
        bin_thresholds=list(BIN_THRESHOLDS),
        feature_counts=bin_counts(x).tolist(),
        classes=classes,
        label_counts=[int((predicted == c).sum()) for c in classes],
    )


# --8<-- [end:profile]


def encode(profile: ReferenceProfile) -> bytes:
    """JSON with one feature's counts per line: readable in a diff, the same bytes every time."""
    fields = profile.model_dump()
    rows = ",\n    ".join(json.dumps(row) for row in fields.pop("feature_counts"))
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
    return f'{{\n{head},\n  "feature_counts": [\n    {rows}\n  ]\n}}\n'.encode()


class ProfileError(Exception):
    """The manifest names a profile that is missing, unreadable or not the one it describes."""


# --8<-- [start:load_profile]
def load_profile(model: LoadedModel) -> ReferenceProfile | None:
    """The model's reference profile, its sha256 checked against the manifest; None if it has none."""
    ref = model.manifest.profile
    if ref is None:
        return None
    path = Path(model.directory) / ref.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"the reference profile of {model.name} {model.version} is unreadable") from exc
    if sha256_of(data) != ref.sha256:
        raise ProfileError(
            f"the reference profile of {model.name} {model.version} does not match its checksum"
        )
    try:
        profile = ReferenceProfile.model_validate_json(data)
    except ValidationError as exc:
        raise ProfileError(f"the reference profile of {model.name} {model.version} is malformed") from exc
    m, n_bins = model.manifest, len(profile.bin_thresholds) + 1
    if (
        len(profile.feature_counts) != m.n_features
        or any(len(row) != n_bins for row in profile.feature_counts)
        or profile.classes != m.classes
        or len(profile.label_counts) != len(m.classes)
    ):
        raise ProfileError(f"the reference profile of {model.name} {model.version} is not for this model")
    return profile


# --8<-- [end:load_profile]


def reference(data: bytes, file: str = PROFILE_NAME) -> ProfileRef:
    return ProfileRef(file=file, sha256=sha256_of(data))
