"""The models the app serves, loaded once at start-up and held on app state."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from example_app.ml.artifact import LoadedModel, ModelLoadError, load_model

log = logging.getLogger(__name__)

DIGITS = "digits"  # the name routes ask for; the manifest says which version is behind it


@dataclass
class ModelRegistry:
    models: dict[str, LoadedModel] = field(default_factory=dict)
    # A model that failed to load: its name and the one line that says why (readiness shows it).
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, folders: Mapping[str, Path]) -> ModelRegistry:
        """Load every model; a bad artifact is logged in one line and leaves the app not ready."""
        registry = cls()
        for name, folder in folders.items():
            try:
                registry.models[name] = load_model(folder)
            except ModelLoadError as exc:
                registry.errors[name] = str(exc)
                log.error("model %s not loaded: %s", name, exc)
            else:
                model = registry.models[name]
                log.info("model %s %s loaded (sha256 %s...)", model.name, model.version, model.sha256[:12])
        return registry

    @property
    def ready(self) -> bool:
        return not self.errors and bool(self.models)
