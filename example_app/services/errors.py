"""What services raise. HTTP knows nothing of these names: api/errors.py maps them to statuses."""

from sqlalchemy.exc import IntegrityError


class ServiceError(Exception):
    """Base class; the message is safe to show to the client."""


class NotFoundError(ServiceError):
    def __init__(self, resource: str, resource_id: int | str) -> None:
        super().__init__(f"{resource} {resource_id} not found")


class ConflictError(ServiceError):
    """The request is valid but collides with existing data (a duplicate email)."""


class InvalidReferenceError(ServiceError):
    """The request names a related row that does not exist (a post's author_id).

    `field` is where the reference is in the body, for the 422's `loc` ("author_id",).
    """

    def __init__(self, message: str, field: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.field = field


class AuthenticationError(ServiceError):
    """Unknown email or wrong password: one error for both, so neither is revealed."""


class PermissionDeniedError(ServiceError):
    """The caller is known, and may not do this (an inactive account, someone else's post)."""


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the constraint PostgreSQL reported (asyncpg keeps it on the cause)."""
    return getattr(error.orig.__cause__, "constraint_name", None) if error.orig else None


class UnavailableError(ServiceError):
    """A dependency of the request (a model, the inference workers) cannot serve it right now."""


class UnknownVersionError(NotFoundError):
    """A model version, or alias, that is not registered (404; the message lists what is)."""

    def __init__(self, message: str) -> None:
        ServiceError.__init__(self, message)


class PredictionFailedError(ServiceError):
    """The model raised on a row that its contract accepts (422: that row, not the service)."""
