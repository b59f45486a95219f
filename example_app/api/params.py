"""Query and path parameters shared by the routers."""

from typing import Annotated

from fastapi import Depends, Path, Query
from fastapi.exceptions import RequestValidationError
from starlette.convertors import Convertor, register_url_convertor

from example_app.core.database import INT4_MAX
from example_app.services.keyset import Keyset, decode_cursor

# --8<-- [start:bounds]
# ids are PostgreSQL `integer`: a bigger number is a 422, not a 500
Skip = Annotated[int, Query(ge=0, le=INT4_MAX, description="Rows to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (at most 100)")]
UserId = Annotated[int, Path(ge=1, le=INT4_MAX)]
PostId = Annotated[int, Path(ge=1, le=INT4_MAX)]
# --8<-- [end:bounds]


# --8<-- [start:id_segment]
class IdSegment(Convertor[str]):
    """`{post_id:id}`: a path segment that may be an id, which a lowercase word never is.

    `/posts/search` and `/posts/{post_id}` both match `/posts/search`; with this, the word is
    left to the routes that name it (a 405 for a method they lack), while anything else still
    reaches the id routes, whose validation says what is wrong with it (`-1`, `1.5`, `NaN`: 422).
    The value stays a string: FastAPI converts and bounds it.
    """

    regex = r"[^/]*[^/a-z][^/]*"  # one character, at least, that is not a lowercase letter

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", IdSegment())
# --8<-- [end:id_segment]


# --8<-- [start:cursor]
def keyset_after(
    after: Annotated[
        str | None,
        Query(max_length=100, description="The `next` cursor of the previous page; leave out for the first"),
    ] = None,
) -> Keyset | None:
    if after is None:
        return None
    try:
        return decode_cursor(after)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "after"), "msg": str(exc), "input": after}]
        ) from None


After = Annotated[Keyset | None, Depends(keyset_after)]
# --8<-- [end:cursor]
