"""The request contract of a model version, from its manifest: how many features, in which range.

The body schemas check what every version shares (finite numbers, no extra fields); the count
and range are checked here against the version that answers, so a version with another contract
is served by its own rules, and OpenAPI shows the contract of the version behind the alias.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from example_app.ml.artifact import LoadedModel
from example_app.services.model_registry import DIGITS


# --8<-- [start:contract]
@lru_cache(maxsize=32)
def contract(n_features: int, low: float, high: float) -> TypeAdapter[list[float]]:
    """One row of a version's input: exactly `n_features` numbers, each in [low, high]."""
    value = Annotated[float, Field(ge=low, le=high)]
    return TypeAdapter(Annotated[list[value], Field(min_length=n_features, max_length=n_features)])


def check_rows(
    model: LoadedModel, rows: Sequence[Sequence[float]], where: Callable[[int], tuple[Any, ...]]
) -> None:
    """A 422 naming each row that breaks `model`'s contract; `where(i)` is row i's place in the body."""
    m = model.manifest
    adapter = contract(m.n_features, *m.feature_range)
    errors: list[Any] = []
    for i, row in enumerate(rows):
        try:
            adapter.validate_python(row)
        except ValidationError as exc:
            errors += [{**e, "loc": (*where(i), *e["loc"])} for e in exc.errors(include_url=False)]
    if errors:
        raise RequestValidationError(errors)


# --8<-- [end:contract]


# --8<-- [start:openapi]
def show_model_contract(app: FastAPI) -> None:
    """OpenAPI's PredictionInput shows the contract of the version the alias serves now; the
    document is made again when that version changes."""
    generate = app.openapi
    shown: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        resources = getattr(app.state, "resources", None)
        model = resources.models.models.get(DIGITS) if resources is not None else None
        key = (model.version, model.sha256) if model is not None else None
        if app.openapi_schema is None or shown.get("key") != key:
            app.openapi_schema = None
            document = generate()
            if model is not None:
                pixels = document["components"]["schemas"]["PredictionInput"]["properties"]["pixels"]
                m = model.manifest
                pixels.update(contract(m.n_features, *m.feature_range).json_schema())
                pixels["description"] = (
                    f"{m.n_features} numbers in [{m.feature_range[0]:g}, {m.feature_range[1]:g}]: the "
                    f"contract of {m.name} {m.version}, which answers a request naming no version; a request "
                    "naming a version is checked against that version's manifest"
                )
            shown["key"] = key
        assert app.openapi_schema is not None  # FastAPI's generate() keeps what it made
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --8<-- [end:openapi]
