"""The model the app serves: an ONNX artifact with a manifest (ML10).

`artifact` is all the app imports at run time (onnxruntime and numpy, no scikit-learn);
`training` (scikit-learn, skl2onnx) is imported only by `python3 tasks.py train` and the tests.
"""

from example_app.ml.artifact import (
    DIGITS_MODEL_DIR,
    LoadedModel,
    Manifest,
    ModelLoadError,
    Prediction,
    load_model,
)

__all__ = ["DIGITS_MODEL_DIR", "LoadedModel", "Manifest", "ModelLoadError", "Prediction", "load_model"]
