"""Field types shared by the input schemas."""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, StringConstraints, field_validator

# --8<-- [start:fields]
# One address, one account: "Mixed@Example.com" and "mixed@example.com" are the same user.
Email = Annotated[EmailStr, StringConstraints(max_length=255), AfterValidator(str.lower)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# Length is the policy that matters (NIST 800-63B); 128 bounds the hashing work per request.
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
# --8<-- [end:fields]


# --8<-- [start:no_nulls]
class PatchModel(BaseModel):
    """Base of PATCH schemas: a field may be left out, but not sent as null.

    `model_dump(exclude_unset=True)` keeps an explicit `{"name": null}`, which would write NULL
    into a NOT NULL column (a 500). Rejecting it here makes it a 422 naming the field.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out instead")
        return value


# --8<-- [end:no_nulls]
