"""The project's shape: one get_db, layering, lifespan, pinned set-up, and the two commands."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel.ext.asyncio.session import AsyncSession

from devtools.postgres_provider import free_port
from tests.migrations.workspace import Ran, alembic
from tests.support import ROOT

APP = ROOT / "example_app"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.pattern("S02", "E29")
def test_get_db_is_defined_once_and_wrapped_in_session_dep() -> None:
    definitions = [
        path.relative_to(ROOT).as_posix()
        for path in APP.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "get_db"
    ]
    assert definitions == ["example_app/api/dependencies.py"]
    from typing import get_args

    from example_app.api.dependencies import SessionDep, get_db

    assert get_args(SessionDep)[1].dependency is get_db


# --8<-- [start:test_layering]
LAYERS = {  # a package may import only from the packages listed for it
    "core": {"core"},
    "ml": {"ml"},  # the model artifact and inference: no app code below it
    "models": {"models"},
    "jobs": {"core", "ml", "models", "jobs"},  # the queue and its tasks, below who queues them
    "schemas": {"schemas"},  # the API's contract, bounds included: no settings
    "services": {"core", "ml", "models", "schemas", "jobs", "services"},
    # what an app instance owns while it runs (example_app/resources.py), and its routes
    "api": {"core", "ml", "models", "schemas", "jobs", "services", "resources", "api"},
}


@pytest.mark.pattern("S04")
def test_imports_point_from_routes_to_services_to_models() -> None:
    for package, allowed in LAYERS.items():
        for path in (APP / package).rglob("*.py"):
            for module in imports_of(path):
                if module.startswith("example_app."):
                    layer = module.split(".")[1]
                    assert layer in allowed, f"{path.relative_to(ROOT)} imports {module}"


# --8<-- [end:test_layering]


@pytest.mark.pattern("E28", "S06")
def test_start_up_is_a_lifespan_not_on_event() -> None:
    from example_app.main import app

    source = "\n".join(p.read_text() for p in APP.rglob("*.py"))
    assert "on_event" not in source
    assert "lifespan=lifespan" in (APP / "main.py").read_text()
    assert not getattr(app.router, "on_startup", [])
    assert not getattr(app.router, "on_shutdown", [])


@pytest.mark.pattern("T04", "S06")
async def test_the_test_client_runs_the_lifespan(client: AsyncClient, app: FastAPI) -> None:
    assert app.state.resources.started_at is not None  # opened by the lifespan on start-up


# --8<-- [start:test_testclient_lifespan]
@pytest.mark.pattern("E27", "T04")
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
def test_testclient_runs_the_lifespan_only_inside_with() -> None:
    from fastapi.testclient import TestClient

    from example_app.main import app

    TestClient(app)  # the original's `client = TestClient(app)`: start-up never happens
    assert not hasattr(app.state, "resources")
    with TestClient(app):
        assert hasattr(app.state, "resources")
    assert not hasattr(app.state, "resources")  # and shutdown ran


# --8<-- [end:test_testclient_lifespan]


@pytest.mark.pattern("E10", "SC03")
def test_response_schemas_use_pydantic_v2_config() -> None:
    from example_app.schemas.post import PostResponse
    from example_app.schemas.user import UserResponse

    source = "\n".join(p.read_text() for p in APP.rglob("*.py"))
    assert "class Config" not in source
    assert UserResponse.model_config.get("from_attributes") is True
    assert PostResponse.model_config.get("from_attributes") is True


@pytest.mark.pattern("W08")
def test_every_feature_router_has_its_database_tests() -> None:
    features = [p.stem for p in (APP / "api" / "routes").glob("*.py") if not p.stem.startswith("_")]
    assert set(features) >= {"health", "users", "posts"}
    for feature in features:
        candidates = [ROOT / "tests" / d / f"test_{feature}.py" for d in ("api", "ml", ".")]
        assert any(c.exists() for c in candidates), f"no tests for routes/{feature}.py"


@pytest.mark.pattern("T02", "E25")
async def test_the_suite_runs_on_postgresql(db_session: AsyncSession) -> None:
    version = (await (await db_session.connection()).execute(text("SELECT version()"))).scalar_one()
    assert version.startswith("PostgreSQL ")
    assert db_session.get_bind().dialect.name == "postgresql"


@pytest.mark.pattern("D10", "S05", "E24")
def test_dependencies_are_pinned() -> None:
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    for name in ("requirements.txt", "requirements-dev.txt"):
        lines = [
            line.split("#")[0].strip()
            for line in (ROOT / name).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert lines
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[\w.]+", line) for line in lines), name
    runtime = (ROOT / "requirements.txt").read_text()
    for package in (
        "fastapi",
        "sqlmodel",
        "asyncpg",
        "alembic",
        "pydantic-settings",
        "pwdlib",
        "email-validator",
    ):
        assert f"\n{package}==" in runtime, package


@pytest.mark.pattern("D10", "TS01")
def test_tasks_runs_inside_the_venv_without_reinstalling(capsys: pytest.CaptureFixture[str]) -> None:
    from invoke.program import Program

    import tasks

    assert tasks._in_venv()  # this interpreter is the venv's: the bootstrap re-ran itself in it
    assert tasks.STAMP.read_text() == tasks.lock_digest()  # pins unchanged: nothing to install
    Program(namespace=tasks.ns).run(["tasks.py", "--list"], exit=False)
    assert "db.revision" in capsys.readouterr().out


@pytest.mark.pattern("TS01")
def test_a_python_too_old_for_the_pins_stops_in_one_line() -> None:
    import tasks

    assert tasks.python_problem((3, 11, 7)) is None
    problem = tasks.python_problem((3, 11, 2))  # Debian 12's python3
    assert problem is not None
    assert problem.startswith("tasks.py needs Python 3.11.5 or newer; this is 3.11.2 (")


@pytest.mark.system("a venv created by tasks.py's bootstrap")
@pytest.mark.pattern("TS01", "D10")
def test_a_failed_set_up_says_so_in_one_line(tmp_path: Path) -> None:
    """A broken install stops with a readable line, and is retried on the next run."""
    for name in ("tasks.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "requirements-dev.txt").write_text("fmlg-no-such-package==0.0.0\n")
    base_python = getattr(sys, "_base_executable", sys.executable)
    result = subprocess.run(
        [base_python, "tasks.py", "--list"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "installing dependencies failed (exit 1); see pip's output above"
    )
    assert (tmp_path / "venv" / "bin" / "python").exists()
    assert not (tmp_path / "venv" / ".installed-from").exists()  # not marked as done


def _alembic(database_url: str) -> Ran:
    return alembic(["current"], database_url, check=False)


@pytest.mark.pattern("TS02")
def test_cannot_connect_is_one_readable_line(database_url: str) -> None:
    url = make_url(database_url)
    missing_db = url.set(database="no_such_database").render_as_string(hide_password=False)
    result = _alembic(missing_db)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"alembic: cannot connect to {make_url(missing_db).render_as_string(hide_password=True)}: "
        + result.stderr.strip().split(": ", 2)[-1]
    ]
    assert 'database "no_such_database" does not exist' in result.stderr

    down = url.set(host="127.0.0.1", port=free_port()).render_as_string(hide_password=False)
    result = _alembic(down)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Connect call failed" in result.stderr


# --8<-- [start:test_uvicorn_boots]
@pytest.mark.system("uvicorn as a process")
@pytest.mark.pattern("W01", "W09")
def test_the_app_boots_under_uvicorn_on_loopback(database_url: str, migrated: object) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / "venv" / "bin" / "uvicorn"), "example_app.main:app", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "uvicorn did not answer within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["database"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health/ready", timeout=5).status_code == 200
        # The quick start's prediction, signed in as the quick start is: the example request
        # shipped next to the model.
        api = f"http://127.0.0.1:{port}/api/v1"
        login = {"username": BOOT_USER["email"], "password": BOOT_USER["password"]}
        assert httpx.post(f"{api}/users", json=BOOT_USER, timeout=10).status_code == 201
        token = httpx.post(f"{api}/auth/token", data=login, timeout=10).json()["access_token"]
        example = (ROOT / "example_app/ml/artifacts/digits/example-request.json").read_bytes()
        predicted = httpx.post(
            f"{api}/predictions",
            content=example,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["label"] == 0
        _delete_logged_prediction(database_url, predicted.json()["id"])  # it was committed
    finally:
        server.terminate()
        server.wait(timeout=10)
        _delete_boot_user(database_url)


# --8<-- [end:test_uvicorn_boots]


BOOT_USER = {"email": "boot@example.com", "password": "correct horse", "name": "Boot"}


def _delete_boot_user(database_url: str) -> None:
    from sqlalchemy import create_engine, text

    from tests.support import sync_url

    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE email = :e"), {"e": BOOT_USER["email"]})
    engine.dispose()


def _delete_logged_prediction(database_url: str, prediction_id: int) -> None:
    from sqlalchemy import create_engine, text

    from tests.support import sync_url

    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        deleted = conn.execute(text("DELETE FROM predictions WHERE id = :id"), {"id": prediction_id})
    engine.dispose()
    assert deleted.rowcount == 1  # the row was in the table: the prediction was logged


@pytest.mark.pattern("W09")
def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 tasks.py serve" in readme
    assert "python3 tasks.py test" in readme
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()
