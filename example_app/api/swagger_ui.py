"""Swagger UI at /docs, from files installed with the app (swagger-ui-bundle) instead of a CDN.

FastAPI's own /docs page loads its script and style from a CDN: on a network without one the
page stays blank, and every visit tells a third party who reads the API's documentation. Its
/redoc page does the same, and no installed package ships ReDoc's script: the app has no /redoc.
"""

import base64
import hashlib
import re

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS, ASSETS, REDIRECT = "/docs", "/docs/assets", "/docs/oauth2-redirect"
# Swagger UI's default asks validator.swagger.io to check the document, by URL, from an image.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def with_docs_policy(page: HTMLResponse) -> HTMLResponse:
    """The page, with a Content-Security-Policy that lets it load the app's own files and run
    its own inline script (named by its hash), and nothing else."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(page.body)
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page


def serve_swagger_ui(app: FastAPI) -> None:
    """/docs for an app created with `docs_url=None`."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy's path prefix
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=f"{root}{REDIRECT}",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return with_docs_policy(page)

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return with_docs_policy(get_swagger_ui_oauth2_redirect_html())

    app.add_route(DOCS, swagger_ui, include_in_schema=False)
    app.add_route(REDIRECT, oauth2_redirect, include_in_schema=False)
