"""All table models. Importing this package registers every table on `SQLModel.metadata`."""

from example_app.models.model_version import ModelAlias, ModelVersion
from example_app.models.post import Post
from example_app.models.prediction import PredictionLog
from example_app.models.user import User

__all__ = ["ModelAlias", "ModelVersion", "Post", "PredictionLog", "User"]
