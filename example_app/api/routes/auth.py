"""/api/v1/auth: the OAuth2 password flow's token endpoint."""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from example_app.api.dependencies import LoginLimiterDep, SettingsDep, UserServiceDep
from example_app.api.errors import responses
from example_app.core.security import create_access_token
from example_app.schemas.auth import Token
from example_app.schemas.common import Storable

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginForm(OAuth2PasswordRequestForm):
    """OAuth2's password form (what Swagger UI's Authorize sends), under the app's text rules:
    a NUL in the email would reach the account lookup, and fail there as a 500."""

    def __init__(
        self,
        username: Annotated[str, Form(max_length=255), Storable],
        password: Annotated[str, Form(max_length=128, json_schema_extra={"format": "password"}), Storable],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    ) -> None:
        super().__init__(grant_type=grant_type, username=username, password=password)


# RFC 6749, section 5.1: a token is a credential; no cache (shared proxy, browser) may keep one.
NOT_STORED = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_RESPONSE: dict[str, Any] = {
    "headers": {
        "Cache-Control": {
            "description": "`no-store`: no cache may keep the token",
            "schema": {"type": "string"},
        },
        "Pragma": {"description": "`no-cache`, for HTTP/1.0 caches", "schema": {"type": "string"}},
    }
}


@router.post(
    "/token",
    response_model=Token,
    responses={
        200: TOKEN_RESPONSE,
        **responses(
            400,
            401,
            403,
            413,
            422,
            429,
            503,
            unauthorized="Unknown email or wrong password (one answer for both)",
            forbidden="The account is inactive",
        ),
    },
)
async def login(
    form: Annotated[LoginForm, Depends()],
    request: Request,
    service: UserServiceDep,
    limiter: LoginLimiterDep,
    settings: SettingsDep,
    response: Response,
) -> Token:
    account = form.username.strip().lower()  # the email; counted whether or not it has an account
    address = request.client.host if request.client else "unknown"
    if (wait := await limiter.attempt(account, address)) is not None:  # before any hashing
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "Too many login attempts; try again later",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    user = await service.authenticate(account, form.password)  # 401 or 403: the attempt counts
    await limiter.succeeded(account)  # what stays counted for the account are its failures
    assert user.id is not None
    token = create_access_token(settings, user.id)
    response.headers.update(NOT_STORED)
    return Token(access_token=token, expires_in=settings.ACCESS_TOKEN_MINUTES * 60)
