"""Query and path parameters shared by the routers."""

from typing import Annotated

from fastapi import Path, Query

INT4_MAX = 2**31 - 1  # ids are PostgreSQL `integer`: a bigger number is a 422, not a 500

Skip = Annotated[int, Query(ge=0, le=INT4_MAX, description="Rows to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size (at most 100)")]
UserId = Annotated[int, Path(ge=1, le=INT4_MAX)]
PostId = Annotated[int, Path(ge=1, le=INT4_MAX)]
