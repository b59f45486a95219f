"""The models the app serves: versions registered in PostgreSQL, loaded and checked, behind aliases.

A request asks for a model by name, answered by the version its alias (`MODEL_ALIAS`, default
`production`) points at, or for an explicit version. Each resolves to a `LoadedModel` the request
keeps to its end, so switching an alias never changes the model under a request in flight.

Switching (`refresh`): the new version is loaded off the event loop, checked (inside the allowed
roots, the registered checksum, the graph, a smoke prediction) and only then put behind the
alias; a version that fails leaves the old one serving and says why in `warnings`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import numpy as np
from anyio.to_thread import run_sync

from example_app.ml.artifact import LoadedModel, ModelLoadError, load_model
from example_app.services.errors import UnavailableError, UnknownVersionError
from example_app.services.model_version import (
    PROJECT_DIR,
    VersionRow,
    read_aliases,
    read_version,
    versions_of,
)

log = logging.getLogger(__name__)

DIGITS = "digits"  # the model the prediction routes serve; the registry says which version
CANDIDATE = "candidate"  # the alias canary traffic goes to
EXPLICIT_VERSIONS_KEPT = 4  # versions asked for by number, besides the aliased ones, kept loaded
# A version asked for by number that failed to load is not tried again for this long (each try
# reads and hashes its file on a thread) unless its registry row changes: 503 at once meanwhile.
FAILED_LOAD_SECONDS = 30.0

Sessions = Callable[[], AbstractAsyncContextManager[object]]  # an async_sessionmaker
AliasReader = Callable[[list[str], list[str]], Awaitable[dict[tuple[str, str], VersionRow]]]


# --8<-- [start:load_checked]
def load_checked(row: VersionRow, roots: Sequence[Path]) -> LoadedModel:
    """Load a registered version, or raise ModelLoadError: its folder must be inside one of
    `roots` (a database row is not allowed to point at any file), its manifest must be the
    registered name, version and sha256 (checked before onnxruntime sees the bytes), and a smoke
    prediction inside its contract must answer one of its classes."""
    folder = Path(row.artifact_path)
    folder = (folder if folder.is_absolute() else PROJECT_DIR / folder).resolve()  # symlinks too
    if not any(folder.is_relative_to(root.resolve()) for root in roots):
        raise ModelLoadError(
            f"{row.name} {row.version}: artifact path {row.artifact_path} is outside MODEL_ROOTS; "
            "refusing to load"
        )
    model = load_model(folder, expected_sha256=row.sha256)
    if (model.name, model.version) != (row.name, row.version):
        raise ModelLoadError(
            f"{row.name} {row.version}: the manifest in {folder} is {model.name} {model.version}; "
            "refusing to load"
        )
    low, high = model.manifest.feature_range
    labels, probabilities = model.predict_proba(np.full((1, model.manifest.n_features), (low + high) / 2))
    if int(labels[0]) not in model.manifest.classes or not np.isclose(probabilities.sum(), 1, atol=1e-3):
        raise ModelLoadError(f"{row.name} {row.version}: the smoke prediction is not a valid answer")
    return model


# --8<-- [end:load_checked]


class ModelRegistry:
    def __init__(
        self,
        sessions: Sessions,
        roots: Sequence[Path],
        alias: str = "production",
        names: Sequence[str] = (DIGITS,),
    ) -> None:
        self.sessions = sessions
        self.roots = list(roots)
        self.alias = alias  # what a request that names no version gets
        self.names = list(names)
        self._serving: dict[str, LoadedModel] = {}  # name -> the version behind the alias
        self._candidates: dict[str, LoadedModel] = {}  # name -> the version behind `candidate`
        self._explicit: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()  # least recent first
        self._loading: dict[tuple[str, str], asyncio.Lock] = {}
        # Versions that failed to load: the row they were loaded from, and when (time.monotonic).
        self._failed: dict[tuple[str, str], tuple[VersionRow, float]] = {}
        # A model with no version serving: the one line that says why (readiness: 503).
        self.errors: dict[str, str] = {}
        # An alias moved to a version that could not be loaded; the old one still serves (200).
        self.warnings: dict[str, str] = {}

    @property
    def models(self) -> dict[str, LoadedModel]:
        """Name -> the version that answers requests naming no version."""
        return dict(self._serving)

    def candidate(self, name: str) -> LoadedModel | None:
        """The version behind `candidate`, loaded and checked; None when there is none."""
        return self._candidates.get(name)

    @property
    def ready(self) -> bool:
        return not self.errors and all(name in self._serving for name in self.names)

    # --8<-- [start:resolve]
    async def resolve(self, name: str, version: str | None = None) -> LoadedModel:
        """The model a request gets: the alias's version, or `version` (loaded on first use)."""
        if version is None:
            model = self._serving.get(name)
            if model is None:
                raise UnavailableError(f"model {name!r} is not loaded")
            return model
        if (served := self._serving.get(name)) is not None and served.version == version:
            return served
        key = (name, version)
        if (model := self._explicit.get(key)) is not None:
            self._explicit.move_to_end(key)
            return model
        async with self._loading.setdefault(key, asyncio.Lock()):  # one load per version at once
            if (model := self._explicit.get(key)) is None:
                model = await self._load_explicit(name, version)
        return model

    # --8<-- [end:resolve]

    # --8<-- [start:load_explicit]
    async def _load_explicit(self, name: str, version: str) -> LoadedModel:
        async with self.sessions() as db:
            row = await read_version(db, name, version)  # type: ignore[arg-type]
            if row is None:
                known = await versions_of(db, name)  # type: ignore[arg-type]
                raise UnknownVersionError(
                    f"model {name!r} has no version {version}"
                    + (f" (registered: {', '.join(known)})" if known else "")
                )
        unavailable = UnavailableError(
            f"model {name!r} version {version} cannot be loaded; see the server log"
        )
        failed = self._failed.get((name, version))
        if failed is not None and failed[0] == row and time.monotonic() - failed[1] < FAILED_LOAD_SECONDS:
            raise unavailable  # the same row failed a moment ago: not read and hashed again
        try:
            model = await run_sync(load_checked, row, self.roots)
        except ModelLoadError as exc:
            log.error("model %s %s not loaded: %s", name, version, exc)
            self._failed[(name, version)] = (row, time.monotonic())
            raise unavailable from None
        self._failed.pop((name, version), None)
        self._explicit[(name, version)] = model
        while len(self._explicit) > EXPLICIT_VERSIONS_KEPT:
            self._explicit.popitem(last=False)  # requests holding it finish on it; then it is freed
        return model

    # --8<-- [end:load_explicit]

    # --8<-- [start:refresh]
    async def refresh(self, read: AliasReader | None = None) -> None:
        """Read the aliases (with `read`, else in a session of the pool); load, check and switch
        to every version that changed. Never raises: a failure is logged and recorded, and
        whatever served before keeps serving."""
        try:
            if read is not None:
                wanted = await read(self.names, [self.alias, CANDIDATE])
            else:
                async with self.sessions() as db:
                    wanted = await read_aliases(db, self.names, [self.alias, CANDIDATE])  # type: ignore[arg-type]
        except Exception as exc:  # the database is down, or not migrated: try again next time
            for name in self.names:
                if name not in self._serving:
                    self.errors[name] = f"cannot read the model registry ({type(exc).__name__})"
            log.warning("model registry not read: %s", type(exc).__name__)
            return
        for name in self.names:
            await self._follow(name, self.alias, wanted.get((name, self.alias)), self._serving, name)
            # The candidate (canary traffic, canary.py) is followed the same way; a candidate that
            # does not load is a warning, never a reason to be unready.
            row = wanted.get((name, CANDIDATE))
            if row is None:
                self._candidates.pop(name, None)
                self.warnings.pop(f"{name} {CANDIDATE}", None)
            else:
                await self._follow(name, CANDIDATE, row, self._candidates, f"{name} {CANDIDATE}")

    async def _follow(
        self, name: str, alias: str, row: VersionRow | None, slot: dict[str, LoadedModel], key: str
    ) -> None:
        """Put `row`'s version behind `alias` in `slot[name]` once it is loaded and checked."""
        current = slot.get(name)
        if row is None:
            if current is None:
                self.errors[name] = f"no version of {name!r} has the alias {alias!r}"
            return
        if current is not None and (current.version, current.sha256) == (row.version, row.sha256):
            self.warnings.pop(key, None)  # back on the version that serves: nothing failed
            return
        try:
            model = await run_sync(load_checked, row, self.roots)  # off the event loop
        except ModelLoadError as exc:  # logged once, not at every poll
            if current is None and alias == self.alias:
                if self.errors.get(name) != str(exc):
                    log.error("model %s not loaded: %s", name, exc)
                self.errors[name] = str(exc)
            else:
                serves = current.version if current is not None else "none"
                warning = f"{alias} -> {row.version} not loaded, {serves} serves: {exc}"
                if self.warnings.get(key) != warning:
                    log.error("model %s %s -> %s not switched: %s", name, alias, row.version, exc)
                self.warnings[key] = warning
            return
        # One assignment on the event loop: the next request gets the new version, those in
        # flight keep the object they resolved.
        slot[name] = model
        if alias == self.alias:
            self.errors.pop(name, None)
        self.warnings.pop(key, None)
        before = f" (was {current.version})" if current else ""
        log.info("model %s %s -> %s%s, sha256 %s...", name, alias, model.version, before, model.sha256[:12])

    # --8<-- [end:refresh]
