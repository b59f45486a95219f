"""Population stability index (LC05): how far a distribution over bins moved from a reference.

PSI = sum over bins of (actual - expected) * ln(actual / expected), on shares of the rows. It is 0
for identical shares, grows with every bin that moved, and is symmetric in the two. The usual
reading: under 0.1 stable, 0.1 to 0.25 worth watching, over 0.25 drifted.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WATCH = 0.1  # the conventional cut-offs
DRIFT = 0.25  # the report's default threshold
# A bin empty on one side would make ln(actual / expected) infinite: its share counts as EPSILON
# instead (the usual fix in PSI implementations), so a bin the training data never filled
# contributes a large but finite amount once live rows land in it.
EPSILON = 1e-4


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, epsilon: float = EPSILON) -> npt.NDArray[np.float64]:
    """PSI along the last axis of two arrays of bin counts (or shares) of the same shape: one value
    per row, e.g. one per feature for arrays of shape (n_features, n_bins)."""
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"bin counts of different shapes: {e.shape} and {a.shape}")
    if (e < 0).any() or (a < 0).any() or not (e.sum(-1) > 0).all() or not (a.sum(-1) > 0).all():
        raise ValueError("bin counts must be non-negative, with at least one row counted")
    e = np.maximum(e / e.sum(-1, keepdims=True), epsilon)
    a = np.maximum(a / a.sum(-1, keepdims=True), epsilon)
    result: npt.NDArray[np.float64] = ((a - e) * np.log(a / e)).sum(-1)
    return result
