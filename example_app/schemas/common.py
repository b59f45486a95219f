"""Field types shared by the input schemas, and the PATCH base class."""

import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    StrictBool,
    StringConstraints,
    field_validator,
)


# --8<-- [start:storable]
def storable(value: str) -> str:
    """Text PostgreSQL can hold. `text`, `varchar` and `jsonb` refuse the NUL character, and
    asyncpg cannot encode a lone surrogate ("\\ud800", valid in JSON, not in UTF-8): either
    would be a 500 at the INSERT. Here it is a 422 naming the field."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode: a lone surrogate (\\ud800-\\udfff) is not") from None
    return value


VISIBLE = frozenset("LNPS")  # letters, digits, punctuation, symbols: not marks, spaces or format


def visible(value: str) -> str:
    """A name a person can read: "\\u200b" (a zero-width space) passes strip() and min_length."""
    if not any(unicodedata.category(char)[0] in VISIBLE for char in value):
        raise ValueError("must contain a visible character, not only spaces or invisible ones")
    return value


# Every text field of every input schema ends with these: `Annotated[str, <length>, Storable]`,
# and `Visible` too for a name, a title, a tag or a search query.
Storable = AfterValidator(storable)
Visible = AfterValidator(visible)
# --8<-- [end:storable]

# --8<-- [start:fields]
# One address, one account: "Mixed@Example.com" and "mixed@example.com" are the same user.
Email = Annotated[EmailStr, StringConstraints(max_length=255), AfterValidator(str.lower)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Storable, Visible
]
# Length is the policy that matters (NIST 800-63B); 128 bounds the hashing work per request.
# Storable too: a password is hashed from its UTF-8 bytes, which a lone surrogate has none of.
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), Storable]
# JSON's true and false only: 0, 1, "true" and "yes" are refused, not converted.
Flag = StrictBool
# --8<-- [end:fields]


# --8<-- [start:no_nulls]
def _not_nullable(schema: dict[str, Any]) -> None:
    """`{"anyOf": [X, {"type": "null"}], "default": null}` -> X: what the validator accepts."""
    for prop in schema.get("properties", {}).values():
        choices = [c for c in prop.pop("anyOf", []) if c != {"type": "null"}]
        if len(choices) == 1:
            prop.update(choices[0])
        elif choices:
            prop["anyOf"] = choices
        if prop.get("default", ...) is None:
            del prop["default"]


class PatchModel(BaseModel):
    """Base of PATCH schemas: a field may be left out, but not sent as null.

    `model_dump(exclude_unset=True)` keeps an explicit `{"name": null}`, which would write NULL
    into a NOT NULL column (a 500). Rejecting it here makes it a 422 naming the field, and the
    OpenAPI schema says so: the fields are typed `X | None` for Python, advertised as `X`.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_nullable)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out instead")
        return value


# --8<-- [end:no_nulls]
