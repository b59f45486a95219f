"""What every answer tells a browser: HD02 (an error body echoes input; no browser may sniff it
into a page or run it) and AU01 (the docs page, Swagger UI, loads the app's own files only)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from httpx import AsyncClient, Response

from example_app.api.security_headers import SECURITY_HEADERS
from tests.support import AppFactory, Caller, path

Call = Callable[[AsyncClient, Caller], Awaitable[Response]]

# --8<-- [start:header_tests]
# One answer of each kind the app gives: a route's JSON, each way of failing, and its pages.
ANSWERS: dict[str, Call] = {
    "JSON route (200)": lambda c, me: c.get(path("get_user", user_id=me.id), headers=me.headers),
    "created (201)": lambda c, me: c.post(
        path("create_post"), json={"title": "t", "body": "b"}, headers=me.headers
    ),
    "no content (204)": lambda c, me: c.options(path("list_posts")),
    "unauthenticated (401)": lambda c, me: c.get(path("get_user", user_id=me.id)),
    "not found (404)": lambda c, me: c.get(path("get_post", post_id=123_456)),
    "no such path (404)": lambda c, me: c.get("/no/such/path"),
    "method not allowed (405)": lambda c, me: c.put(path("list_posts")),
    "over the body limit (413)": lambda c, me: c.post(path("create_user"), content=b" " * 3_000_000),
    "invalid (422)": lambda c, me: c.get(path("list_posts"), params={"limit": 0}),
    "OpenAPI document": lambda c, me: c.get("/openapi.json"),
    "Swagger UI's script": lambda c, me: c.get("/docs/assets/swagger-ui-bundle.js"),
}


@pytest.mark.pattern("HD02")
@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_every_kind_of_answer_carries_the_security_headers(
    client: AsyncClient, caller: Caller, kind: str
) -> None:
    response = await ANSWERS[kind](client, caller)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # An API answer opened in a browser may load and run nothing, and be framed by no one.
    assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.pattern("HD02")
async def test_a_bug_and_a_shed_request_carry_them_too(make_app: AppFactory) -> None:
    """A 500 is answered outside every middleware, a shed prediction by the first of them."""
    app = await make_app(PREDICTION_MAX_IN_PROGRESS=1)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    app.state.admission.in_progress = 1  # as if a prediction were running: the next is shed
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # as uvicorn: logged
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        bug = await http.get("/broken")
        shed = await http.post(path("predict"), json={"pixels": [0] * 64})
    assert (bug.status_code, shed.status_code) == (500, 503)
    for response in (bug, shed):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.status_code, name)


# --8<-- [end:header_tests]


# --8<-- [start:docs_page_tests]
ATTRIBUTE_URLS = re.compile(rb"""(?:src|href)=["']?([^"' >]+)""")


def policy_of(response: Response) -> dict[str, list[str]]:
    directives = (part.split() for part in response.headers["content-security-policy"].split(";"))
    return {name: sources for name, *sources in directives}


@pytest.mark.pattern("AU01")
@pytest.mark.parametrize("page", ["/docs", "/docs/oauth2-redirect"])
async def test_the_docs_pages_load_the_apps_own_files_and_nothing_else(
    client: AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = policy_of(response)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    # Every source the policy allows is the app itself, inline data, or a script it names by hash.
    sources = {source for allowed in policy.values() for source in allowed}
    assert not {s for s in sources if s not in ("'self'", "'none'", "data:") and not s.startswith("'sha256-")}
    # ...and the hashes are those of the page's own inline scripts: each one runs, nothing else.
    inline = re.findall(rb"<script>(.*?)</script>", response.content, flags=re.DOTALL)
    assert inline
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline}
    assert {s for s in policy["script-src"] if s.startswith("'sha256-")} == hashes
    # Every file the page names is the app's own, and the app serves it.
    for url in ATTRIBUTE_URLS.findall(response.content):
        assert url.startswith(b"/"), url
        assert not url.startswith(b"//"), url  # another host, whatever the scheme
        assert (await client.get(url.decode())).status_code == 200, url


@pytest.mark.pattern("AU01")
async def test_swagger_ui_asks_no_outside_validator_and_there_is_no_cdn_redoc(client: AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert '"validatorUrl": null' in page  # Swagger UI's default sends the document's URL away
    assert "cdn" not in page.lower()
    assert (await client.get("/redoc")).status_code == 404  # FastAPI's loads from a CDN


# --8<-- [end:docs_page_tests]
