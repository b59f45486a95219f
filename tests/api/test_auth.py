"""Logging in and proving who you are: the token endpoint, the bearer check, timing, rate limits."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import jwt
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from example_app.core.config import get_settings
from example_app.core.rate_limit import LoginLimiter
from example_app.core.security import ALGORITHM, create_access_token
from tests.api.test_permissions import PUBLIC
from tests.support import (
    PASSWORD,
    AppFactory,
    Caller,
    CallerFactory,
    ClientFactory,
    SlowHasher,
    bearer,
    http_client,
    log_in,
    path,
    real_hashing,
)

UNAUTHENTICATED = "Invalid or expired token"  # the detail of the error body
BAD_LOGIN = "Incorrect email or password"


# --8<-- [start:test_login_flow]
@pytest.mark.pattern("AU01")
async def test_log_in_get_a_token_and_use_it(client: AsyncClient) -> None:
    body = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
    ada = (await client.post(path("create_user"), json=body)).json()  # sign up: no token needed

    # The OAuth2 password flow: a form with username (the email) and password.
    response = await client.post(
        path("login"), data={"username": "Ada@Example.com", "password": "correct horse"}
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == get_settings().ACCESS_TOKEN_MINUTES * 60

    key = get_settings().SECRET_KEY.get_secret_value()  # type: ignore[union-attr]
    claims = jwt.decode(token["access_token"], key, algorithms=[ALGORITHM])
    assert claims["sub"] == str(ada["id"])  # who: the user id, and nothing else about them
    assert claims["exp"] - claims["iat"] == get_settings().ACCESS_TOKEN_MINUTES * 60

    me = await client.get(path("get_user", user_id=ada["id"]), headers=bearer(token["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"


# --8<-- [end:test_login_flow]


@pytest.mark.pattern("AU01")
async def test_the_token_response_may_not_be_stored_by_any_cache(client: AsyncClient, caller: Caller) -> None:
    """RFC 6749, section 5.1: a response that carries a token says so (a shared proxy or the
    browser's cache would otherwise keep it), as the OpenAPI document says too."""
    from example_app.main import app

    response = await log_in(client, caller.user["email"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"  # HTTP/1.0 caches
    documented = app.openapi()["paths"][path("login")]["post"]["responses"]["200"]["headers"]
    assert set(documented) == {"Cache-Control", "Pragma"}


@pytest.mark.pattern("AU01", "R08")
def test_openapi_declares_the_bearer_scheme_on_every_operation_but_the_public_ones() -> None:
    """A route added later without a token check fails here: only PUBLIC may go without one."""
    from example_app.main import app  # the module's app, as uvicorn serves it

    schema = app.openapi()
    assert schema["components"]["securitySchemes"] == {
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            "flows": {"password": {"scopes": {}, "tokenUrl": "/api/v1/auth/token"}},
        }
    }
    declared = {
        (method.upper(), route): operation.get("security")
        for route, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert ("POST", "/api/v1/predictions") in declared  # the document is the whole API
    assert not PUBLIC - set(declared)  # the allow-list names real operations only
    bearer_required: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]
    protected = {op: security for op, security in declared.items() if op not in PUBLIC}
    assert protected == dict.fromkeys(protected, bearer_required)
    assert {op: declared[op] for op in PUBLIC} == dict.fromkeys(PUBLIC)  # and they ask for none
    # That each one also refuses a caller without a token, or an inactive one, over HTTP:
    # tests/api/test_permissions.py, test_every_operation_but_the_public_ones_refuses_...


# --- 401: who are you? ----------------------------------------------------------------------------


def forged(caller: Caller) -> dict[str, str]:
    """A well-formed token for the caller, signed with a key that is not the app's."""
    claims = jwt.decode(caller.headers["Authorization"].split()[1], options={"verify_signature": False})
    return bearer(jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256"))


def unsigned(caller: Caller) -> dict[str, str]:
    """The classic `alg: none` token: claims with no signature at all."""
    claims = jwt.decode(caller.headers["Authorization"].split()[1], options={"verify_signature": False})
    return bearer(jwt.encode(claims, None, algorithm="none"))


def tampered(caller: Caller) -> dict[str, str]:
    """The caller's real token with its payload changed to another user id (signature kept)."""
    header, _, signature = caller.headers["Authorization"].split()[1].split(".")
    other = jwt.encode({"sub": "1", "exp": 4102444800}, "x" * 32).split(".")[1]
    return bearer(f"{header}.{other}.{signature}")


def signed(**claims: object) -> dict[str, str]:
    """A token signed with the app's own key, with whatever claims: a leaked key's worth, or a
    future bug in the app's own signing. The signature holds; the claims must still be checked."""
    key = get_settings().SECRET_KEY.get_secret_value()  # type: ignore[union-attr]
    return bearer(jwt.encode(claims, key, algorithm=ALGORITHM))


def soon() -> int:
    return int(time.time()) + 60


LIFETIME = get_settings().ACCESS_TOKEN_MINUTES * 60
YEAR_9999 = 253_402_300_799  # 9999-12-31T23:59:59Z

BAD_CREDENTIALS: dict[str, Callable[[Caller], dict[str, str]]] = {
    "expired": lambda c: bearer(create_access_token(get_settings(), c.id, lifetime=timedelta(seconds=-1))),
    "forged (another key)": forged,
    "unsigned (alg none)": unsigned,
    "tampered payload": tampered,
    "not a JWT": lambda c: bearer("not-a-token"),
    "empty": lambda c: {"Authorization": "Bearer"},
    "no sub claim": lambda c: bearer(
        jwt.encode({"exp": 4102444800}, get_settings().SECRET_KEY.get_secret_value())  # type: ignore[union-attr]
    ),
    # Validly signed, and still refused: each claim is read strictly (Python's int() would take
    # " 7" and "7 " for 7, and asyncpg refuses an id past int4 with a 500).
    "sub 2^31 (past int4)": lambda c: signed(sub=str(2**31), exp=soon()),
    "sub 2^63": lambda c: signed(sub=str(2**63), exp=soon()),
    "sub with a leading space": lambda c: signed(sub=f" {c.id}", exp=soon()),
    "sub with a trailing space": lambda c: signed(sub=f"{c.id} ", exp=soon()),
    "sub with a trailing newline": lambda c: signed(sub=f"{c.id}\n", exp=soon()),
    "sub with a plus sign": lambda c: signed(sub=f"+{c.id}", exp=soon()),
    "no exp claim": lambda c: signed(sub=str(c.id)),
    "exp in the year 9999": lambda c: signed(sub=str(c.id), exp=YEAR_9999),
    "exp past the token lifetime": lambda c: signed(sub=str(c.id), exp=int(time.time()) + 2 * LIFETIME),
    "exp as a string": lambda c: signed(sub=str(c.id), exp=str(soon())),
    "exp as a float": lambda c: signed(sub=str(c.id), exp=soon() + 0.5),
}


@pytest.mark.pattern("AU02")
async def test_no_token_is_401_with_the_bearer_challenge(client: AsyncClient, caller: Caller) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await client.get(path("get_user", user_id=caller.id), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"] == "Not authenticated"


@pytest.mark.pattern("AU02")
@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
async def test_a_bad_token_is_401_and_says_nothing_more(
    client: AsyncClient, caller: Caller, kind: str
) -> None:
    headers = BAD_CREDENTIALS[kind](caller)
    response = await client.get(path("get_user", user_id=caller.id), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == UNAUTHENTICATED  # the same for each kind of bad token


@pytest.mark.pattern("AU02")
async def test_the_strict_claims_still_take_what_the_app_signs(client: AsyncClient, caller: Caller) -> None:
    """The refusals above are the claims' doing, not the helper's: the same helper's plain claims
    pass, and so does an expiry at the end of the configured lifetime."""
    url = path("get_user", user_id=caller.id)
    assert (await client.get(url, headers=signed(sub=str(caller.id), exp=soon()))).status_code == 200
    longest = signed(sub=str(caller.id), exp=int(time.time()) + LIFETIME)
    assert (await client.get(url, headers=longest)).status_code == 200


@pytest.mark.pattern("AU02")
async def test_a_token_outlives_its_account_but_not_its_access(client: AsyncClient, caller: Caller) -> None:
    url = path("get_user", user_id=caller.id)
    assert (
        await client.delete(path("delete_user", user_id=caller.id), headers=caller.headers)
    ).status_code == 204
    response = await client.get(url, headers=caller.headers)  # signed and unexpired, user gone
    assert response.status_code == 401
    assert response.json()["detail"] == UNAUTHENTICATED


@pytest.mark.pattern("AU02")
async def test_the_token_expires(client: AsyncClient, caller: Caller) -> None:
    url = path("get_user", user_id=caller.id)
    # exp is in whole seconds: valid for 1 to 2 s (a 1 s lifetime could end before the first call)
    token = create_access_token(get_settings(), caller.id, lifetime=timedelta(seconds=2))
    short = bearer(token)
    assert (await client.get(url, headers=short)).status_code == 200
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)  # pyjwt allows no leeway unless told to
    assert (await client.get(url, headers=short)).status_code == 401


# --- 403: known, and not allowed --------------------------------------------------------------------


@pytest.mark.pattern("AU02")
async def test_a_valid_token_without_the_right_is_403(
    client: AsyncClient, make_caller: CallerFactory
) -> None:
    ordinary, inactive = await make_caller(), await make_caller(active=False)
    listing = await client.get(path("list_users"), headers=ordinary.headers)
    assert listing.status_code == 403  # a superuser's route
    assert listing.json()["detail"] == "Only superusers may list users"
    assert "www-authenticate" not in listing.headers  # logging in again would not help
    own = await client.get(path("get_user", user_id=inactive.id), headers=inactive.headers)
    assert own.status_code == 403
    assert own.json()["detail"] == "This account is inactive"


@pytest.mark.pattern("AU02", "AU04")
async def test_an_inactive_account_cannot_log_in(client: AsyncClient, make_caller: CallerFactory) -> None:
    inactive = await make_caller(active=False)
    right = await log_in(client, inactive.user["email"], PASSWORD)
    assert right.status_code == 403
    assert right.json()["detail"] == "This account is inactive"
    wrong = await log_in(client, inactive.user["email"], "not the password")
    assert wrong.status_code == 401  # only the password's owner learns the account is inactive
    assert wrong.json()["detail"] == BAD_LOGIN


# --- AU04: unknown email and wrong password, alike ----------------------------------------------------


@pytest.mark.pattern("AU04")
async def test_unknown_email_and_wrong_password_answer_alike(client: AsyncClient, caller: Caller) -> None:
    unknown = await log_in(client, "nobody@example.com", PASSWORD)
    wrong = await log_in(client, caller.user["email"], "not the password")
    for response in (unknown, wrong):
        assert response.status_code == 401
        assert response.json()["detail"] == BAD_LOGIN
        assert response.headers["www-authenticate"] == "Bearer"
    assert unknown.headers.keys() == wrong.headers.keys()
    # The same bytes but for each request's own id, which is as long in both.
    assert unknown.content.replace(unknown.headers["x-request-id"].encode(), b"") == wrong.content.replace(
        wrong.headers["x-request-id"].encode(), b""
    )


Login = Callable[[], Awaitable[Response]]


async def timings(attempts: dict[str, Login], rounds: int) -> dict[str, list[float]]:
    """Seconds per attempt, each kind interleaved with the others (so drift hits all alike)."""
    seen: dict[str, list[float]] = {kind: [] for kind in attempts}
    for _ in range(rounds):
        for kind, attempt in attempts.items():
            started = time.perf_counter()
            assert (await attempt()).status_code == 401
            seen[kind].append(time.perf_counter() - started)
    return seen


def overlap(a: list[float], b: list[float]) -> tuple[float, float]:
    """(ratio of the medians, share of a's samples that lie within b's range)."""
    ratio = statistics.median(a) / statistics.median(b)
    return ratio, sum(min(b) <= x <= max(b) for x in a) / len(a)


# --8<-- [start:test_login_timing]
@pytest.mark.system("timings of the app's real Argon2 cost")
@pytest.mark.pattern("AU04")
async def test_unknown_email_and_wrong_password_take_the_same_time(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_app.api.dependencies import get_login_limiter

    app = await make_app(**real_hashing())  # the cost is the point here: the app's own Argon2
    client = await make_client(app)
    generous = LoginLimiter("1000/minute", "1000/minute")  # this test is not about the limit
    app.dependency_overrides[get_login_limiter] = lambda: generous
    body = {"email": "timed@example.com", "password": PASSWORD, "name": "Timed"}
    assert (await client.post(path("create_user"), json=body)).status_code == 201
    attempts: dict[str, Login] = {
        "unknown email": lambda: log_in(client, "nobody@example.com", PASSWORD),
        "wrong password": lambda: log_in(client, body["email"], "not the password"),
    }
    await timings(attempts, rounds=1)  # warm-up
    seen = await timings(attempts, rounds=8)
    ratio, within = overlap(seen["unknown email"], seen["wrong password"])
    print(f"AU04 medians unknown/wrong = {ratio:.2f}; {within:.0%} of the unknown-email times within")
    assert 0.67 < ratio < 1.5
    assert within >= 0.5

    # The check can fail: without the dummy hash, an unknown email answers at once.
    passwords = app.state.resources.passwords
    verify = passwords.verify

    async def no_dummy_hash(password: str, hashed: str) -> bool:
        return False if hashed == passwords.dummy_hash else await verify(password, hashed)

    monkeypatch.setattr(passwords, "verify", no_dummy_hash)
    naive = await timings(attempts, rounds=4)
    ratio, within = overlap(naive["unknown email"], naive["wrong password"])
    print(f"AU04 without the dummy hash: medians unknown/wrong = {ratio:.2f}; {within:.0%} within")
    assert ratio < 0.2
    assert within == 0


# --8<-- [end:test_login_timing]


# --- AU06: too many attempts ------------------------------------------------------------------------


# --8<-- [start:test_rate_limit]
@pytest.mark.pattern("AU06")
async def test_the_sixth_failure_for_an_account_is_429_even_with_the_right_password(
    client: AsyncClient, caller: Caller
) -> None:
    assert get_settings().LOGIN_FAILURES_PER_ACCOUNT == "5/minute"
    email = caller.user["email"]
    for _ in range(5):
        assert (await log_in(client, email, "guess")).status_code == 401
    blocked = await log_in(client, email, PASSWORD)  # refused before the password is checked
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert blocked.json()["detail"] == "Too many login attempts; try again later"


@pytest.mark.pattern("AU06")
async def test_the_limit_counts_per_address_across_accounts(client: AsyncClient, app: FastAPI) -> None:
    assert get_settings().LOGIN_ATTEMPTS_PER_ADDRESS == "20/minute"
    for n in range(20):  # one guess at each of 20 accounts, from one address
        assert (await log_in(client, f"victim{n}@example.com", "guess")).status_code == 401
    assert (await log_in(client, "victim20@example.com", "guess")).status_code == 429
    # Another address is not affected (httpx's ASGI transport says which client is calling).
    transport = ASGITransport(app=app, client=("192.0.2.7", 4321))
    async with AsyncClient(transport=transport, base_url="http://test") as elsewhere:
        assert (await log_in(elsewhere, "victim20@example.com", "guess")).status_code == 401


@pytest.mark.pattern("AU06")
async def test_the_window_moves_on_and_a_success_clears_an_accounts_failures(
    make_app: AppFactory, make_client: ClientFactory, caller: Caller
) -> None:
    app = await make_app(
        LOGIN_FAILURES_PER_ACCOUNT="2 per 1 second", LOGIN_ATTEMPTS_PER_ADDRESS="100 per 1 second"
    )
    client = await make_client(app)
    email = caller.user["email"]
    assert [(await log_in(client, email, "guess")).status_code for _ in range(3)] == [401, 401, 429]
    await asyncio.sleep(1.1)  # the window has moved past the two failures
    assert (await log_in(client, email, "guess")).status_code == 401
    assert (await log_in(client, email, PASSWORD)).status_code == 200  # the second of two allowed
    # The success cleared the account's count: two more failures fit again before a 429.
    assert [(await log_in(client, email, "guess")).status_code for _ in range(3)] == [401, 401, 429]


# --8<-- [end:test_rate_limit]


# --- AU07: hashing, bounded ----------------------------------------------------------------------


# --8<-- [start:test_hashing_slots]
@pytest.mark.pattern("AU07")
@pytest.mark.parametrize("slots", [2, 12])
async def test_sign_ups_at_once_hash_at_most_the_concurrency_setting_at_a_time(
    make_app: AppFactory, engine: AsyncEngine, slots: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve sign-ups at once on an app of its own (its own pool: they commit), each hash held
    for 50 ms: the hashes overlap up to the setting, never beyond."""
    app = await make_app(PASSWORD_HASH_CONCURRENCY=slots)
    counter = SlowHasher(app.state.resources.passwords.hasher)
    monkeypatch.setattr(app.state.resources.passwords, "hasher", counter)
    bodies = [{"email": f"u{n}@example.com", "password": PASSWORD, "name": f"U{n}"} for n in range(12)]
    try:
        async with http_client(app) as client:
            answers = await asyncio.gather(*(client.post(path("create_user"), json=b) for b in bodies))
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE users RESTART IDENTITY CASCADE"))
    assert [a.status_code for a in answers] == [201] * 12
    assert 2 <= counter.most <= slots  # they overlap, up to the setting and never beyond...
    if slots > 2:
        assert counter.most > 2  # ...and past two only where the setting allows it


# --8<-- [end:test_hashing_slots]
