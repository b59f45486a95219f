"""Find a real PostgreSQL for the test suite and for `tasks.py serve`.

Order of preference (the first that works wins, and the choice is reported):

1. a URL from the environment (``TEST_DATABASE_URL`` for tests, ``DATABASE_URL`` for serve);
2. testcontainers, when a Docker engine answers and the image is present locally;
3. local PostgreSQL binaries driven by pytest-postgresql's executor: ``PG_CTL``, else binaries
   that ship pgvector first (the ``pgserver`` wheel's PostgreSQL 16), then the system's.

``POSTGRES_PROVIDER=url|testcontainers|local`` forces one of them (CI runs the suite once per
provider). There is no SQLite fallback: without a server we stop with one line naming the fixes.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.privileges import (
    SERVER_USER,
    as_server_user,
    is_cached_copy,
    is_root,
    pg_ctl_as_server_user,
    prepare_dir,
    readable_copy,
    server_dir,
)

DEFAULT_IMAGE = "pgvector/pgvector:pg16"
PROVIDERS = ("url", "testcontainers", "local")
DOCKER_PROBE_TIMEOUT = 2.0
WHEEL = "pgserver wheel"

FIX_HINT = (
    "set {env_var} to a PostgreSQL URL, start a Docker engine that has the image {image} "
    "(python3 tasks.py docker-image builds it offline), or install PostgreSQL binaries "
    "(apt install postgresql, or pip install pgserver)"
)


class ProviderError(RuntimeError):
    """No PostgreSQL could be provided; the message is one readable line."""


@dataclass(frozen=True)
class PostgresServer:
    url: str  # SQLAlchemy URL with the asyncpg driver
    provider: str  # one of PROVIDERS
    description: str  # what the user reads: "local binaries: PostgreSQL 15.18 at ..."


def _asyncpg_url(user: str, password: str | None, host: str, port: int, dbname: str) -> str:
    from sqlalchemy.engine import URL

    url = URL.create("postgresql+asyncpg", user, password, host, port, dbname)
    return url.render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The extension the app needs, and the question a running server answers about it: whether its
# installation ships the extension (CREATE EXTENSION would work), not whether a database has it yet.
VECTOR_EXTENSION = "vector"
VECTOR_CHECK = "SELECT 1 FROM pg_available_extensions WHERE name = %s"
VECTOR_CHECK_TIMEOUT = 3  # seconds to connect; libpq's floor is 2


def pgvector_note(url: str) -> str:
    """Whether the server at `url` has pgvector ("with pgvector", "WITHOUT pgvector"), or why not known."""
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, connect_timeout=VECTOR_CHECK_TIMEOUT, autocommit=True) as conn:
            found = conn.execute(VECTOR_CHECK, (VECTOR_EXTENSION,)).fetchone() is not None
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())  # one line: libpq's messages have tabs and newlines
        return f"pgvector not checked: {reason[:100]}"
    return "with pgvector" if found else "WITHOUT pgvector"


# --- 1. a URL ---------------------------------------------------------------------------------


def _from_url(url: str, env_var: str) -> PostgresServer:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a readable text
        raise ProviderError(f"{env_var} is not a valid database URL: {exc}") from None
    if parsed.get_backend_name() != "postgresql":
        raise ProviderError(f"{env_var} must point to PostgreSQL, got {parsed.drivername!r}")
    url = parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    return PostgresServer(
        url=url,
        provider="url",
        description=f"{env_var} ({pgvector_note(url)}): {parsed.render_as_string(hide_password=True)}",
    )


# --- 2. testcontainers ------------------------------------------------------------------------


def _configure_testcontainers_env() -> None:
    # Must happen before testcontainers is imported: it reads them at import time.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


def docker_image() -> str:
    return os.environ.get("POSTGRES_IMAGE", DEFAULT_IMAGE)


def probe_docker(image: str) -> str | None:
    """Return None when Docker answers and has the image, else the reason it cannot be used."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:
        return "the docker package is not installed"
    try:
        client = docker.from_env(timeout=DOCKER_PROBE_TIMEOUT)
    except DockerException as exc:
        return f"no Docker engine answers ({str(exc).splitlines()[0][:120]})"
    try:
        client.ping()
        client.images.get(image)
    except ImageNotFound:
        return f"Docker answers but the image {image} is not present locally"
    except Exception as exc:  # a dead socket raises requests/urllib3 errors
        return f"no Docker engine answers ({type(exc).__name__})"
    finally:
        client.close()
    return None


@contextlib.contextmanager
def _testcontainers(image: str) -> Iterator[PostgresServer]:
    _configure_testcontainers_env()
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(image, username="test", password="test", dbname="test", driver=None)
    container.start()
    try:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(5432))
        short_id = container.get_wrapped_container().short_id
        url = _asyncpg_url("test", "test", host, port, "test")
        yield PostgresServer(
            url=url,
            provider="testcontainers",
            description=f"testcontainers ({pgvector_note(url)}): {image} (container {short_id}) "
            f"on {host}:{port}",
        )
    finally:
        container.stop()  # removes the container and its volumes


# --- 3. local binaries --------------------------------------------------------------------------


def _candidate_pg_ctls() -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    if env := os.environ.get("PG_CTL"):
        found.append(("PG_CTL", Path(env)))
    system = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True,
    )
    found += [("system PostgreSQL", Path(p)) for p in system]
    if which := shutil.which("pg_ctl"):
        found.append(("system PostgreSQL", Path(which)))
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        found.append((WHEEL, Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"))
    # The app needs pgvector (CREATE EXTENSION vector): binaries that have it come first, so
    # the pgserver wheel's PostgreSQL 16 wins over a system PostgreSQL without it. PG_CTL, a
    # deliberate choice, stays first whatever it has.
    chosen, rest = found[:1] if env else [], found[1:] if env else found
    return chosen + sorted(rest, key=lambda candidate: not has_pgvector(candidate[1]))


def has_pgvector(pg_ctl: Path) -> bool:
    """Whether the installation of this pg_ctl ships pgvector (`<sharedir>/extension/vector.control`)."""
    pg_config = pg_ctl.with_name("pg_config")
    try:
        result = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    sharedir = Path(result.stdout.strip())
    return result.returncode == 0 and (sharedir / "extension" / "vector.control").is_file()


def major_version(pg_ctl: Path) -> str | None:
    """The major version of these binaries ("16" from `pg_ctl (PostgreSQL) 16.4`), None if unknown."""
    try:
        result = subprocess.run(
            [*as_server_user(), str(pg_ctl), "--version"], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    words = result.stdout.split()
    return words[-1].split(".")[0] if result.returncode == 0 and words else None


def data_dir(run_dir: Path, major: str | None) -> tuple[Path, str]:
    """The cluster directory for binaries of version `major`, and a note when it is not `data/`.

    A cluster is readable only by the major version that created it: when `data/` was made by
    another one (PostgreSQL 15 before pgvector was required), these binaries get `data-pg<major>/`
    beside it and the old cluster is left untouched.
    """
    default, versioned = run_dir / "data", run_dir / f"data-pg{major}"
    found = _cluster_version(default)
    if major is None or (not versioned.exists() and found in (None, major)):
        return default, ""
    other = found not in (None, major)
    note = f"; {default} holds a PostgreSQL {found} cluster, left as it is" if other else ""
    return versioned, note


def _cluster_version(datadir: Path) -> str | None:
    try:
        return (datadir / "PG_VERSION").read_text().strip()
    except OSError:
        return None


# --8<-- [start:find_pg_ctl]
def _usable(pg_ctl: Path) -> str | None:
    """None when this pg_ctl runs (as the server user when root: devtools/privileges.py), else why not.

    pg_ctl --version answers even where the server user cannot reach the installation (it only
    warns "invalid binary ... Permission denied"), so initdb, which pg_ctl runs, is tried as well.
    """
    if not pg_ctl.is_file():
        return f"{pg_ctl} does not exist"
    who = f" as {SERVER_USER}" if is_root() else ""
    for program in (pg_ctl, pg_ctl.resolve().with_name("initdb")):
        try:
            result = subprocess.run(
                [*as_server_user(), str(program), "--version"], capture_output=True, text=True, timeout=10
            )
        except OSError as exc:
            return f"{program} cannot run: {exc}"
        unreachable = "invalid binary" in result.stderr or "Permission denied" in result.stderr
        if result.returncode != 0 or unreachable:
            said = " ".join(result.stderr.split())[:160] or f"exit status {result.returncode}"
            return f"{program} cannot run{who}: {said}"
    return None


def _wheel_copy(pg_ctl: Path) -> Path:
    """The pgserver wheel's pg_ctl in a copy of its installation that the server user can run.

    PostgreSQL finds its lib/ and share/ relative to the running binary, and the binaries find the
    wheel's own libraries (libpq) in site-packages/pgserver.libs (their RPATH), so the copy keeps
    both trees where they are relative to each other.
    """
    site_packages = pg_ctl.parents[3]  # <site-packages>/pgserver/pginstall/bin/pg_ctl
    parts = tuple(p for p in ("pgserver/pginstall", "pgserver.libs") if (site_packages / p).is_dir())
    try:
        version = importlib.metadata.version("pgserver")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    copy = readable_copy(site_packages, parts, f"pginstall-{version}")
    return copy / pg_ctl.relative_to(site_packages)


def find_pg_ctl() -> tuple[str, Path]:
    reasons = []
    for origin, pg_ctl in _candidate_pg_ctls():
        reason = _usable(pg_ctl)
        if reason and origin == WHEEL and is_root() and pg_ctl.is_file():
            # A clone root keeps in a private directory: the server user cannot reach the wheel
            # there, so its binaries run from a copy that user can read (see readable_copy).
            try:
                pg_ctl = _wheel_copy(pg_ctl)
            except OSError as exc:
                reason += f"; a copy it can reach could not be made: {exc}"
            else:
                reason = _usable(pg_ctl)
        if reason is None:
            return origin, pg_ctl
        reasons.append(reason)
    raise LookupError("; ".join(reasons) or "no pg_ctl found")


# --8<-- [end:find_pg_ctl]


def _connect_when_ready(port: int, timeout: float = 60.0) -> Any:
    """A connection once the server accepts them: after an unclean stop it first replays its WAL
    ("the database system is starting up"), which pg_ctl -w does not always wait out."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
            )
        except psycopg.OperationalError as exc:
            if "starting up" not in str(exc) or time.monotonic() > deadline:
                raise ProviderError(f"PostgreSQL on port {port} does not accept connections: {exc}") from None
            time.sleep(0.2)


def _create_database(port: int, dbname: str) -> None:
    with _connect_when_ready(port) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


@contextlib.contextmanager
def local_server(origin: str, pg_ctl: Path, data_home: Path | None, dbname: str) -> Iterator[PostgresServer]:
    """Start a server from local binaries; data in ``data_home`` survives, else a temp dir."""
    from pytest_postgresql.executors.proc import PostgreSQLExecutor

    keep = data_home is not None
    run_dir = Path(tempfile.mkdtemp(prefix="fmlg-pg-")) if data_home is None else server_dir(data_home)
    prepare_dir(run_dir)
    executable = pg_ctl_as_server_user(run_dir, pg_ctl)
    port = free_port()
    datadir, note = data_dir(run_dir, major_version(pg_ctl)) if keep else (run_dir / "data", "")
    copied = f" (a copy: {SERVER_USER} cannot reach the {origin}'s own)" if is_cached_copy(pg_ctl) else ""

    class Executor(PostgreSQLExecutor):
        def init_directory(self) -> None:
            if (Path(self.datadir) / "PG_VERSION").exists():  # an existing cluster is reused
                self._directory_initialised = True
                return
            super().init_directory()

        def clean_directory(self) -> None:
            if not keep:
                super().clean_directory()

    # Durability off for throwaway test servers only: it roughly halves commit latency.
    fast = "" if keep else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    executor = Executor(
        executable=str(executable),
        host="127.0.0.1",
        port=port,
        datadir=str(datadir),
        unixsocketdir=str(run_dir),
        logfile=str(run_dir / "postgresql.log"),
        startparams="-w",
        dbname=dbname,
        user="postgres",
        postgres_options=f"-c listen_addresses=127.0.0.1 {fast}".strip(),
        timeout=90,
    )
    executor.start()
    try:
        _create_database(port, dbname)
        yield PostgresServer(
            url=_asyncpg_url("postgres", None, "127.0.0.1", port, dbname),
            provider="local",
            description=f"local binaries ({origin}, {'with' if has_pgvector(pg_ctl) else 'WITHOUT'} "
            f"pgvector): PostgreSQL {executor.version} from {pg_ctl.parent}{copied}, data in {datadir}, "
            f"on 127.0.0.1:{port}{note}",
        )
    finally:
        executor.stop()
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


# --- choosing ---------------------------------------------------------------------------------


# --8<-- [start:provide]
@contextlib.contextmanager
def provide(env_var: str, *, data_home: Path | None = None, dbname: str = "test") -> Iterator[PostgresServer]:
    """Yield a running PostgreSQL; stop what was started on exit.

    ``env_var`` names the URL variable that wins when set (``TEST_DATABASE_URL`` or
    ``DATABASE_URL``). ``data_home`` asks for a persistent local server (serve, db.* tasks):
    its data survives across runs, so a throwaway container is not considered unless forced.
    """
    forced = os.environ.get("POSTGRES_PROVIDER", "").strip().lower() or None
    if forced is not None and forced not in PROVIDERS:
        raise ProviderError(f"POSTGRES_PROVIDER must be one of {', '.join(PROVIDERS)}, got {forced!r}")
    image = docker_image()
    hint = FIX_HINT.format(env_var=env_var, image=image)
    url = os.environ.get(env_var)

    if forced in (None, "url") and url:
        yield _from_url(url, env_var)
        return
    if forced == "url":
        raise ProviderError(f"POSTGRES_PROVIDER=url but {env_var} is not set")

    reasons = []
    if forced == "testcontainers" or (forced is None and data_home is None):
        reason = probe_docker(image)
        if reason is None:
            with _testcontainers(image) as server:
                yield server
            return
        if forced:
            raise ProviderError(f"POSTGRES_PROVIDER=testcontainers but {reason}")
        reasons.append(reason)

    try:
        origin, pg_ctl = find_pg_ctl()
    except LookupError as exc:
        if forced:
            raise ProviderError(f"POSTGRES_PROVIDER=local but no usable local binaries ({exc})") from None
        reasons.append(f"no usable local PostgreSQL binaries ({exc})")
    else:
        with local_server(origin, pg_ctl, data_home, dbname) as server:
            yield server
        return
    raise ProviderError(f"No PostgreSQL available ({'; '.join(reasons)}): {hint}")


# --8<-- [end:provide]
