"""The PostgreSQL provider's choice: URL, then testcontainers, then local binaries, else one line."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import postgres_provider as pp
from devtools import privileges


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pp, "probe_docker", lambda image: "no Docker engine answers (test)")


@pytest.fixture
def no_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    def none() -> tuple[str, Path]:
        raise LookupError("no pg_ctl found")

    monkeypatch.setattr(pp, "find_pg_ctl", none)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TEST_DATABASE_URL", "POSTGRES_PROVIDER", "PG_CTL", "POSTGRES_IMAGE"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env")
def test_url_from_the_environment_wins_and_gets_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://app:s3cret@db.example:5433/app")
    with pp.provide("TEST_DATABASE_URL") as server:
        assert server.provider == "url"
        assert server.url == "postgresql+asyncpg://app:s3cret@db.example:5433/app"
        assert "s3cret" not in server.description  # the header never prints the password


@pytest.mark.pattern("T02", "E25")
@pytest.mark.usefixtures("clean_env")
def test_a_non_postgres_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "mysql+pymysql://app@db.example/app")
    with pytest.raises(pp.ProviderError, match="must point to PostgreSQL"), pp.provide("TEST_DATABASE_URL"):
        pass


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env", "no_docker")
def test_without_docker_local_binaries_are_used() -> None:
    with pp.provide("TEST_DATABASE_URL", dbname="provider_probe") as server:
        assert server.provider == "local"
        assert server.url.endswith("/provider_probe")
        assert "local binaries" in server.description


@pytest.mark.pattern("T02", "E25")
@pytest.mark.usefixtures("clean_env", "no_docker", "no_binaries")
def test_nothing_available_is_one_line_naming_the_three_fixes() -> None:
    with pytest.raises(pp.ProviderError) as info, pp.provide("TEST_DATABASE_URL"):
        pass
    message = str(info.value)
    assert "\n" not in message
    assert "set TEST_DATABASE_URL" in message
    assert "Docker engine" in message
    assert "install PostgreSQL binaries" in message
    assert "sqlite" not in message.lower()


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env", "no_docker")
def test_forcing_an_unavailable_provider_fails_instead_of_falling_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_PROVIDER", "testcontainers")
    with (
        pytest.raises(pp.ProviderError, match="POSTGRES_PROVIDER=testcontainers but no Docker"),
        pp.provide("TEST_DATABASE_URL"),
    ):
        pass
    monkeypatch.setenv("POSTGRES_PROVIDER", "sqlite")
    with (
        pytest.raises(pp.ProviderError, match="must be one of url, testcontainers, local"),
        pp.provide("TEST_DATABASE_URL"),
    ):
        pass


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env")
def test_docker_probe_is_quick_for_a_dead_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import time

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    started = time.perf_counter()
    reason = pp.probe_docker(pp.DEFAULT_IMAGE)
    assert reason is not None
    assert "no Docker engine answers" in reason
    assert time.perf_counter() - started < pp.DOCKER_PROBE_TIMEOUT + 1


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env")
def test_pg_ctl_from_the_environment_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_CTL", str(tmp_path / "missing" / "pg_ctl"))
    candidates = pp._candidate_pg_ctls()
    assert candidates[0] == ("PG_CTL", tmp_path / "missing" / "pg_ctl")
    origin, pg_ctl = pp.find_pg_ctl()  # the missing one is skipped with a reason
    assert origin != "PG_CTL"
    assert pg_ctl.name == "pg_ctl"


@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env")
def test_pgserver_wheel_binaries_are_a_candidate() -> None:
    origins = [origin for origin, _ in pp._candidate_pg_ctls()]
    assert "pgserver wheel" in origins  # a machine without apt or Docker still gets a server


@pytest.mark.system("a local server started twice")
@pytest.mark.pattern("T02")
@pytest.mark.usefixtures("clean_env")
def test_persistent_local_data_survives_a_restart() -> None:
    import asyncio
    import shutil
    import tempfile

    import asyncpg

    origin, pg_ctl = pp.find_pg_ctl()
    parent = Path(tempfile.mkdtemp(prefix="fmlg-keep-"))
    parent.chmod(0o755)  # the unprivileged server user must reach it
    home = parent / "pgdata"

    async def run(url: str, sql: str) -> object:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    with pp.local_server(origin, pg_ctl, data_home=home, dbname="keep") as server:
        asyncio.run(run(server.url, "CREATE TABLE kept AS SELECT 42 AS answer"))
    with pp.local_server(origin, pg_ctl, data_home=home, dbname="keep") as server:
        assert asyncio.run(run(server.url, "SELECT answer FROM kept")) == 42
    assert (home / "data" / "PG_VERSION").exists()
    shutil.rmtree(parent)


# --- pgvector (ML06): the local server the app needs has the extension ----------------------------


@pytest.mark.pattern("T02", "ML06")
@pytest.mark.usefixtures("clean_env")
def test_local_binaries_with_pgvector_come_first() -> None:
    origin, pg_ctl = pp.find_pg_ctl()
    assert pp.has_pgvector(pg_ctl), (origin, pg_ctl)  # the pgserver wheel is a dev dependency
    ordered = [pp.has_pgvector(path) for _, path in pp._candidate_pg_ctls()]
    assert ordered == sorted(ordered, reverse=True)  # every one with pgvector before any without


@pytest.mark.pattern("T02", "ML06")
@pytest.mark.usefixtures("clean_env", "no_docker")
def test_the_provider_line_says_whether_the_server_has_pgvector() -> None:
    with pp.provide("TEST_DATABASE_URL", dbname="provider_vector") as server:
        assert "with pgvector" in server.description


@pytest.mark.pattern("T02", "ML06")
@pytest.mark.usefixtures("clean_env")
def test_a_url_line_says_whether_that_server_has_pgvector(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", database_url)  # the suite's own server has it
    with pp.provide("TEST_DATABASE_URL") as server:
        assert server.description.startswith("TEST_DATABASE_URL (with pgvector): postgresql")
    monkeypatch.setattr(pp, "VECTOR_EXTENSION", "not_an_extension")  # what a server without it answers
    with pp.provide("TEST_DATABASE_URL") as server:
        assert server.description.startswith("TEST_DATABASE_URL (WITHOUT pgvector): ")


@pytest.mark.pattern("T02", "E25")
@pytest.mark.usefixtures("clean_env")
def test_a_url_to_no_server_says_why_pgvector_was_not_checked_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("TEST_DATABASE_URL", f"postgresql://app:s3cret@127.0.0.1:{pp.free_port()}/app")
    started = time.perf_counter()
    with pp.provide("TEST_DATABASE_URL") as server:  # the suite connecting later says the rest
        assert server.provider == "url"
        assert "(pgvector not checked: connection failed: " in server.description
        assert "\n" not in server.description
        assert "\t" not in server.description
        assert "s3cret" not in server.description
    assert time.perf_counter() - started < pp.VECTOR_CHECK_TIMEOUT + 1


@pytest.mark.pattern("T02", "ML06")
@pytest.mark.usefixtures("clean_env")
def test_a_testcontainers_line_says_whether_the_container_has_pgvector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from testcontainers.community import postgres

    class Container:  # no Docker needed: the provider's own steps, around a stand-in container
        def __init__(self, image: str, **options: object) -> None:
            self.image = image

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def get_container_host_ip(self) -> str:
            return "127.0.0.1"

        def get_exposed_port(self, port: int) -> int:
            return 49153

        def get_wrapped_container(self) -> object:
            return type("Wrapped", (), {"short_id": "0123456789ab"})()

    asked: list[str] = []

    def note(url: str) -> str:
        asked.append(url)
        return "with pgvector"

    monkeypatch.setattr(postgres, "PostgresContainer", Container)
    monkeypatch.setattr(pp, "pgvector_note", note)
    monkeypatch.setattr(pp, "probe_docker", lambda image: None)  # Docker answers, has the image
    with pp.provide("TEST_DATABASE_URL") as server:
        assert server.provider == "testcontainers"
        assert server.description == (
            f"testcontainers (with pgvector): {pp.DEFAULT_IMAGE} (container 0123456789ab) on 127.0.0.1:49153"
        )
    assert asked == [server.url]  # the container's server is the one asked


@pytest.mark.system("local servers of two major versions")
@pytest.mark.pattern("T02")
def test_a_cluster_of_another_major_version_is_left_alone_and_said_so(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("15\n")  # made by Debian's PostgreSQL 15
    datadir, note = pp.data_dir(tmp_path, "16")
    assert datadir == tmp_path / "data-pg16"
    assert note == f"; {tmp_path / 'data'} holds a PostgreSQL 15 cluster, left as it is"
    assert "\n" not in note

    assert pp.data_dir(tmp_path, "15") == (tmp_path / "data", "")  # its own binaries use it
    (tmp_path / "other").mkdir()
    assert pp.data_dir(tmp_path / "other", "16") == (tmp_path / "other" / "data", "")  # a new one


# --- a clone in a private directory, as root (TT03, issue 18) -------------------------------------

as_root = pytest.mark.skipif(
    not privileges.is_root(), reason="as root only: otherwise the server runs as the user who owns the clone"
)


def _private_site_packages(private: Path) -> Path:
    """The pgserver wheel as pip installs it (package, its libraries, its metadata), under `private`."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    assert spec is not None
    assert spec.origin is not None
    installed = Path(spec.origin).parents[1]
    site = private / "site-packages"
    for name in ("pgserver", "pgserver.libs", *(p.name for p in installed.glob("pgserver-*.dist-info"))):
        shutil.copytree(installed / name, site / name, symlinks=True)
    return site


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A mode-700 directory of root's, like /root or `mkdir -m 700`: the server user cannot enter it."""
    path = Path(tempfile.mkdtemp(prefix="fmlg-private-"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path)


@pytest.mark.system("a copy of the server's binaries")
@pytest.mark.pattern("TT03")
@pytest.mark.usefixtures("clean_env")
@as_root
def test_wheel_binaries_out_of_the_server_users_reach_run_from_a_readable_copy(
    monkeypatch: pytest.MonkeyPatch, private_dir: Path
) -> None:
    pg_ctl = _private_site_packages(private_dir) / "pgserver" / "pginstall" / "bin" / "pg_ctl"
    reason = pp._usable(pg_ctl)  # pg_ctl --version alone answers there; initdb cannot load libpq
    assert reason is not None
    assert reason.startswith(f"{pg_ctl} cannot run as {privileges.SERVER_USER}: invalid binary")
    assert "\n" not in reason

    monkeypatch.setattr(pp, "_candidate_pg_ctls", lambda: [(pp.WHEEL, pg_ctl)])
    origin, copy = pp.find_pg_ctl()
    assert origin == pp.WHEEL
    assert privileges.is_cached_copy(copy)
    assert pp._usable(copy) is None
    assert pp.has_pgvector(copy)  # share/ found relative to the copied binaries
    assert pp.find_pg_ctl() == (origin, copy)  # made once: the same files reuse it

    monkeypatch.setattr(pp, "_candidate_pg_ctls", lambda: [("PG_CTL", pg_ctl)])
    with pytest.raises(LookupError) as info:  # only the wheel's tree is known to copy whole
        pp.find_pg_ctl()
    assert str(info.value) == reason


@pytest.mark.pattern("TT03")
def test_a_readable_copy_is_made_whole_or_not_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    monkeypatch.setattr(privileges, "CACHE_HOME", tmp_path / "cache")
    base = tmp_path / "clone"
    (base / "bin").mkdir(parents=True, mode=0o700)
    (base / "bin" / "tool").write_text("#!/bin/sh\n")
    (base / "bin" / "tool").chmod(0o700)
    (base / "libs").mkdir(mode=0o700)
    (base / "libs" / "lib.so").write_text("lib")
    (base / "libs" / "lib.so").chmod(0o600)
    parts = ("bin", "libs")

    copytree = shutil.copytree

    def crash(src: Path, dst: Path, **options: Any) -> object:
        if Path(src).name == "libs":
            raise OSError("disk full")
        return copytree(src, dst, **options)

    monkeypatch.setattr(shutil, "copytree", crash)
    with pytest.raises(OSError, match="disk full"):
        privileges.readable_copy(base, parts, "tree")
    assert list((tmp_path / "cache").iterdir()) == []  # no half copy, no temp dir left

    stale = tmp_path / "cache" / f".tree-{privileges.tree_digest(base, parts)}-x"
    stale.mkdir()
    os.utime(stale, (0, 0))  # a crashed run's temp dir, long ago
    monkeypatch.setattr(shutil, "copytree", copytree)
    copy = privileges.readable_copy(base, parts, "tree")
    assert list((tmp_path / "cache").iterdir()) == [copy]
    assert (copy / "libs" / "lib.so").read_text() == "lib"
    modes = {p.relative_to(copy).as_posix(): p.stat().st_mode & 0o777 for p in [copy, *copy.rglob("*")]}
    assert modes == {".": 0o755, "bin": 0o755, "bin/tool": 0o755, "libs": 0o755, "libs/lib.so": 0o644}

    monkeypatch.setattr(shutil, "copytree", crash)  # a second call copies nothing
    assert privileges.readable_copy(base, parts, "tree") == copy


# What `tasks.py serve` does in a fresh clone, run by the clone's own devtools with the wheel in
# the clone's private directory (a copy of this venv's: a new venv would take a minute).
SERVE_IN_CLONE = """
import importlib.util, sys
from pathlib import Path
import psycopg
from sqlalchemy.engine import make_url
import devtools
from devtools.postgres_provider import provide

clone, site = Path.cwd(), Path(sys.argv[1])
assert Path(devtools.__file__).is_relative_to(clone), devtools.__file__
assert Path(importlib.util.find_spec("pgserver").origin).is_relative_to(site)
with provide("DATABASE_URL", data_home=clone / ".pgdata", dbname="app") as server:
    conninfo = make_url(server.url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute("CREATE EXTENSION vector")
        assert conn.execute("SELECT '[1,2]'::vector").fetchone() == ("[1,2]",)
    print(server.description)
"""


@pytest.mark.system("a git clone with a server of its own")
@pytest.mark.pattern("TT03")
@as_root
def test_a_fresh_clone_in_a_private_directory_serves_with_pgvector(private_dir: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    clone = private_dir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60)
    site = _private_site_packages(clone / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PG_CTL", "POSTGRES_PROVIDER")}
    try:
        result = subprocess.run(
            [sys.executable, "-c", SERVE_IN_CLONE, str(site)],
            cwd=clone,
            env={**env, "PYTHONPATH": f"{site}{os.pathsep}{clone}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:  # the server's files are outside the clone, where its user can reach them
        shutil.rmtree(privileges.server_dir(clone / ".pgdata"), ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "local binaries (pgserver wheel, with pgvector): PostgreSQL 16" in result.stdout
    assert f"from {privileges.CACHE_HOME}/pginstall-" in result.stdout
    assert f"(a copy: {privileges.SERVER_USER} cannot reach the pgserver wheel's own)" in result.stdout
