"""/api/v1/auth: the OAuth2 password flow's token endpoint."""

import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from example_app.api.dependencies import LoginLimiterDep, UserServiceDep
from example_app.core.config import get_settings
from example_app.core.security import create_access_token
from example_app.schemas.auth import Token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=Token,
    responses={
        401: {"description": "Unknown email or wrong password (one answer for both)"},
        403: {"description": "The account is inactive"},
        429: {"description": "Too many attempts for this account or address; see Retry-After"},
    },
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    service: UserServiceDep,
    limiter: LoginLimiterDep,
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
    minutes = get_settings().ACCESS_TOKEN_MINUTES
    return Token(access_token=create_access_token(user.id), expires_in=minutes * 60)
