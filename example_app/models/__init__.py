"""All table models. Importing this package registers every table on `SQLModel.metadata`.

The naming convention is set before any model is defined, so every constraint and index gets
a deterministic name that migrations can refer to (PostgreSQL would invent one otherwise).
"""

from sqlmodel import SQLModel

# --8<-- [start:naming_convention]
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# --8<-- [end:naming_convention]

# Every model is imported here, after the convention, so that `import example_app.models`
# (Alembic's env.py, the app) sees all tables and relationship targets resolve.
from example_app.models.post import Post  # noqa: E402
from example_app.models.user import User  # noqa: E402

__all__ = ["Post", "User"]
