"""Fixtures for the serving tests: a digit from the dataset the model learnt, as a request body."""

from __future__ import annotations

from typing import Any

import pytest

# Row 0 of scikit-learn's load_digits (a zero), inlined: the app's tests need no scikit-learn.
ZERO = [
    *(0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0),
    *(0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0),
]


@pytest.fixture
def digit() -> dict[str, Any]:
    return {"pixels": [float(v) for v in ZERO]}
