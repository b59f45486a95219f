"""Fixtures for the serving tests: a digit from the dataset the model learnt, as a request body."""

from __future__ import annotations

import json
from typing import Any

import pytest

from example_app.core.config import get_settings


@pytest.fixture
def digit() -> dict[str, Any]:
    """Row 0 of scikit-learn's load_digits (a zero): the example request the quick start sends."""
    body: dict[str, Any] = json.loads((get_settings().MODEL_DIR / "example-request.json").read_text())
    return body
