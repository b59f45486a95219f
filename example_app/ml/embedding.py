"""Text embeddings (ML11): WordLlama's 256-dimension model, which ships inside its wheel.

Nothing is downloaded, ever: the weights (`wordllama/weights/l2_supercat_256.safetensors`) and
the tokenizer config (`wordllama/tokenizers/`) are files of the installed package, and loading
is told where they are and that it may not fetch anything. Loaded once per process (the app's
lifespan, the worker's start), then `embed` is a few matrix operations on the CPU.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from wordllama.inference import WordLlamaInference

log = logging.getLogger(__name__)

DIMENSIONS = 256  # posts.embedding is vector(256)
MODEL_NAME = "wordllama-l2_supercat-256"


class EmbedderLoadError(RuntimeError):
    """The embedding model could not be loaded; the message is one line."""


@dataclass(frozen=True)
class TextEmbedder:
    model: WordLlamaInference
    name: str
    version: str  # the wordllama package's version: the weights are part of it

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length row per text (cosine distance is then 1 - dot product)."""
        if not all(texts):
            raise ValueError("an empty text has no embedding")  # the model answers NaN
        vectors = self.model.embed(list(texts), norm=True, return_np=True)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)


# --8<-- [start:load_embedder]
def load_embedder() -> TextEmbedder:
    """Load the model from the package's own folder, downloads disabled."""
    from pathlib import Path

    import wordllama
    from wordllama import WordLlama

    try:
        # cache_dir: the bundled tokenizer is only found there (under tokenizers/).
        model = WordLlama.load(
            cache_dir=Path(wordllama.__file__).parent, dim=DIMENSIONS, disable_download=True
        )
    except (OSError, ValueError) as exc:  # FileNotFoundError when a file is missing
        raise EmbedderLoadError(f"embedding model not loaded: {str(exc).splitlines()[0]}") from None
    embedder = TextEmbedder(model=model, name=MODEL_NAME, version=wordllama.__version__)
    log.info("embedding model %s (wordllama %s) loaded", embedder.name, embedder.version)
    return embedder


# --8<-- [end:load_embedder]


@functools.cache
def shared_embedder() -> TextEmbedder:
    """The process's one copy: the first call loads it (the lifespan, a worker's start)."""
    return load_embedder()


def embedder_or_none() -> TextEmbedder | None:
    """For the app's start-up: a model that fails to load is logged, and search answers 503."""
    try:
        return shared_embedder()
    except EmbedderLoadError as exc:
        log.error("%s", exc)
        return None


def post_text(title: str, body: str) -> str:
    """What a post's embedding is computed from: its title, then its body."""
    return f"{title}\n\n{body}"
