#!/usr/bin/env python3
"""The one entry point for every workflow of the project.

`python3 tasks.py <task>` works on a fresh machine with only Python 3.11+: outside the project's
virtual environment it creates `venv/`, installs the pinned dependencies and the project (only
when they changed) and runs itself again inside it. Inside the venv, `invoke <task>` is the same.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / "venv"
VENV_PYTHON = VENV / "bin" / "python"
LOCKS = [ROOT / "requirements-dev.txt", ROOT / "pyproject.toml"]
STAMP = VENV / ".installed-from"


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def lock_digest() -> str:
    """What the venv was installed from: the pins and the project's metadata."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in LOCKS)).hexdigest()


# --8<-- [start:bootstrap]
def python_problem(version: tuple[int, ...]) -> str | None:
    """Why this interpreter cannot run the project (pyproject.toml's requires-python), or None."""
    if version >= (3, 11, 5):  # pymdown-extensions 13's floor, and so the project's
        return None
    return f"tasks.py needs Python 3.11.5 or newer; this is {'.'.join(map(str, version))} ({sys.executable})"


def _bootstrap() -> None:
    """Create/refresh venv/ and re-run this command inside it."""
    if problem := python_problem(sys.version_info[:3]):
        sys.exit(problem)
    digest = lock_digest()
    if not VENV_PYTHON.exists() or not STAMP.exists() or STAMP.read_text() != digest:
        started = time.monotonic()
        print("setting up venv/ (the pinned dependencies, once) ...", file=sys.stderr)
        if not VENV_PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        for args in (["-r", str(LOCKS[0])], ["--no-deps", "-e", str(ROOT)]):
            done = subprocess.run([*pip, *args], capture_output=True, text=True)
            if done.returncode != 0:  # pip's own words only when they matter
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
                sys.exit(f"installing dependencies failed (exit {done.returncode}); see pip's output above")
        STAMP.write_text(digest)
        print(f"venv/ set up in {time.monotonic() - started:.0f} s", file=sys.stderr)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


# --8<-- [end:bootstrap]


if __name__ == "__main__" and not _in_venv():
    _bootstrap()

# Below this line we run inside venv/.
import contextlib  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from invoke.collection import Collection  # noqa: E402
from invoke.context import Context  # noqa: E402
from invoke.program import Program  # noqa: E402
from invoke.tasks import task  # noqa: E402

if TYPE_CHECKING:
    from example_app.core.backoff import Backoff

BIN = VENV / "bin"
DATA_HOME = ROOT / ".pgdata"  # the local development server's data, kept across runs


def _run(c: Context, cmd: str, **kwargs: object) -> object:
    with c.cd(str(ROOT)):
        return c.run(cmd, pty=False, **kwargs)


@contextlib.contextmanager
def _database(announce: bool = True) -> Iterator[str]:
    """DATABASE_URL from the environment, else a local PostgreSQL with data in .pgdata/."""
    from devtools.postgres_provider import ProviderError, provide

    try:
        with provide("DATABASE_URL", data_home=DATA_HOME, dbname="app") as server:
            if announce:
                print(f"PostgreSQL: {server.description}", file=sys.stderr)
            previous = os.environ.get("DATABASE_URL")
            os.environ["DATABASE_URL"] = server.url
            try:
                yield server.url
            finally:
                if previous is None:
                    os.environ.pop("DATABASE_URL", None)
                else:
                    os.environ["DATABASE_URL"] = previous
    except ProviderError as exc:
        sys.exit(str(exc))


def _alembic(c: Context, args: str) -> None:
    _run(c, f"{BIN}/alembic {args}")


# --- the app ----------------------------------------------------------------------------------


# --8<-- [start:serve_flags]
# No proxy in front of `serve`: uvicorn believes no X-Forwarded-For (by default it believes one
# from 127.0.0.1, so a local client could name any address and dodge the per-address login
# limit), and says nothing about itself (`server: uvicorn`).
SERVE_UVICORN_FLAGS = ["--no-proxy-headers", "--no-server-header"]
# --8<-- [end:serve_flags]


# --8<-- [start:serve]
@task(
    help={
        "host": "interface to bind (default 127.0.0.1)",
        "port": "port (default 8000)",
        "reload": "restart on code changes",
        "workers": "uvicorn worker processes (default 1; the connection budget is checked at start)",
    }
)
def serve(
    c: Context, host: str = "127.0.0.1", port: int = 8000, reload: bool = False, workers: int = 1
) -> None:
    """Serve the reference app (migrated first) on a real PostgreSQL."""
    embedded = not os.environ.get("DATABASE_URL")
    with _database():
        if embedded:
            _local_secret_key()  # a server of your own (DATABASE_URL) needs a SECRET_KEY of yours
        _alembic(c, "upgrade head")
        print(f"serving on http://{host}:{port}  (docs at /docs, health at /api/v1/health)", file=sys.stderr)
        cmd = [str(BIN / "uvicorn"), "example_app.main:app", "--host", host, "--port", str(port)]
        if workers > 1 and reload:
            sys.exit("--reload runs one process: leave out --workers, or --reload")
        os.environ["WEB_CONCURRENCY"] = str(workers)  # uvicorn's --workers, and the app's budget
        cmd += ["--timeout-graceful-shutdown", "30"]  # on SIGTERM: answer what was accepted, 30 s at most
        cmd += SERVE_UVICORN_FLAGS
        cmd += ["--log-config", "example_app/logging.json"]  # text, or JSON lines with LOG_FORMAT=json
        job_worker = [str(VENV_PYTHON), "-m", "example_app.jobs.worker"]  # embeds new and edited posts
        with contextlib.ExitStack() as stack:
            if workers > 1:  # /metrics sums every worker's files: a new folder for each start
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="metrics-"))
                os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", folder)
            _run_until_signalled([*cmd, "--reload"] if reload else cmd, alongside=job_worker)


# --8<-- [end:serve]


SECRET_KEY_FILE = ROOT / ".secret_key"  # git-ignored


def _local_secret_key() -> None:
    """SECRET_KEY from the environment or .env if set; else one made once, kept in .secret_key."""
    import secrets

    from example_app.core.config import load_settings

    if load_settings().SECRET_KEY is not None:  # a short one stops here, in the app's own words
        return
    if not SECRET_KEY_FILE.exists():
        fd = os.open(SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # yours only
        with os.fdopen(fd, "w") as key_file:
            key_file.write(secrets.token_urlsafe(32) + "\n")
        print(f"made a SECRET_KEY for this machine's server, kept in {SECRET_KEY_FILE.name}", file=sys.stderr)
    os.environ["SECRET_KEY"] = SECRET_KEY_FILE.read_text().strip()


# --8<-- [start:run_until_signalled]
def _run_until_signalled(cmd: list[str], alongside: list[str] | None = None) -> None:
    """Run a server in the foreground; Ctrl-C or SIGTERM stops it, then our finally blocks run.

    `alongside` (the job worker) runs beside it, supervised: started again whenever it exits
    (`Supervised`), and stopped once, with SIGTERM, when the server has stopped (it finishes its
    running jobs, then exits), before the database goes.
    """
    import signal

    helper = Supervised(alongside, "job worker") if alongside else None
    child = subprocess.Popen(cmd, cwd=ROOT)

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while child.poll() is None:
            try:
                if helper is not None:
                    helper.check()  # reaps an exited worker; starts another when its wait is over
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if helper is not None:
            helper.stop()


# --8<-- [end:run_until_signalled]


# --8<-- [start:supervised]
class Supervised:
    """A child process started again whenever it exits, until `stop()`: `serve`'s job worker.

    It runs in a session of its own, out of the terminal's reach (Ctrl-C goes to the server; the
    worker is stopped after it, once). An exited child is reaped at the next `check()`, so none is
    left <defunct>; each restart is one line on stderr, after a wait that doubles while the child
    keeps exiting quickly (the worker's own Backoff: 1 s, 2 s, 4 s ... 30 s).
    """

    def __init__(self, cmd: list[str], name: str, backoff: Backoff | None = None) -> None:
        from example_app.core.backoff import Backoff

        self.cmd, self.name, self.backoff = cmd, name, backoff or Backoff()
        self.restart_at: float | None = None  # set while the child is down
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.started = time.monotonic()
        return subprocess.Popen(self.cmd, cwd=ROOT, start_new_session=True)

    def check(self) -> None:
        now = time.monotonic()
        if self.restart_at is None and (code := self.process.poll()) is not None:
            wait = self.backoff.after(ran_for=now - self.started)
            print(
                f"{self.name} exited ({_exit_status(code)}); starting another in {wait:g} s", file=sys.stderr
            )
            self.restart_at = now + wait
        if self.restart_at is not None and now >= self.restart_at:
            self.process, self.restart_at = self._start(), None

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, and wait for it to finish its jobs; SIGKILL after `timeout`. No restart after."""
        import signal

        self.restart_at = None
        self.process.send_signal(signal.SIGTERM)  # nothing is sent to one that has exited
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _exit_status(code: int) -> str:
    import signal

    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


# --8<-- [end:supervised]


# --8<-- [start:worker]
@task(help={"concurrency": "jobs at once in this worker (default 1)"})
def worker(c: Context, concurrency: int = 1) -> None:
    """Run a job worker (it embeds posts) until Ctrl-C; `serve` already runs one beside the app."""
    with _database():  # DATABASE_URL, else the local server (not while `serve` runs on it)
        _alembic(c, "upgrade head")
        from example_app.jobs.worker import main  # its settings need DATABASE_URL, set just now

        main(["--concurrency", str(concurrency)])  # in this process: Ctrl-C reaches it once


# --8<-- [end:worker]


# --8<-- [start:test]
@task(
    help={
        "args": "extra pytest arguments, e.g. -k health or tests/test_health.py",
        "all": "the full tier too: browser, fuzz, soak, benches, images, processes (installs their tools)",
    }
)
def test(c: Context, args: str = "", all_: bool = False) -> None:
    """The default tier (every pattern, in one process, on a real PostgreSQL); --all adds the full tier."""
    import collections
    import json
    import tempfile

    started = time.monotonic()
    if all_:
        from devtools.test_tools import ensure

        ensure(args)  # installs Chromium, wrk... when the selected tests need them, or stops with one line
    # The full tier's tests carry @pytest.mark.system. The whole default tier runs on every core
    # (pytest-xdist: a copy of the migrated database per worker, a test file per worker at a time);
    # the full tier's, which time servers under load, one at a time.
    runs = [f"-m 'not system' {'-n auto --dist loadfile ' if not args else ''}{args}"]
    if all_:
        runs = [*runs, "-m system"] if not args else [args]
    counts: collections.Counter[str] = collections.Counter()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for selection in runs:
            summary = Path(tmp) / "summary.json"  # written by tests/conftest.py at the end of a run
            result = _run(c, f"{BIN}/pytest {selection}", warn=True, env={"TEST_SUMMARY_FILE": str(summary)})
            counts.update(json.loads(summary.read_text()) if summary.exists() else {})
            failed = failed or getattr(result, "exited", 1) != 0
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""  # said, never hidden
    line = f"{counts['passed']} passed{skipped} in {time.monotonic() - started:.0f} s"
    if not args:  # a partial run says nothing about the catalogue
        from devtools.patterns import catalogue_line, coverage, problems

        cov = coverage()
        if found := problems(cov):
            sys.exit("; ".join(found))
        line += f", {catalogue_line(cov, full_tier=all_)}"
    if failed and not all_ and not any(counts[kind] for kind in ("passed", "failed", "error")):
        # nothing ran: a selection of the full tier's tests (or of none), deselected here
        sys.exit(f"{line}: no test of the default tier matches; with the full tier's: --all --args {args!r}")
    if failed:
        others = ", ".join(f"{n} {kind}" for kind, n in counts.items() if kind in ("failed", "error"))
        sys.exit(f"{line}; FAILED: {others or 'see above'}")
    print(line)


# --8<-- [end:test]


@task(help={"all_groups": "also fail on ML items without tests"})
def patterns(c: Context, all_groups: bool = False) -> None:
    """Table of PATTERNS.md items -> guide page -> tier -> tests; fails when a required item has no
    test, or none in the default tier (unless SLOW_ONLY says why)."""
    from devtools.docs_hooks import Guide
    from devtools.docs_source import DOCS
    from devtools.patterns import REQUIRED_GROUPS, SLOW_ONLY, coverage, problems

    cov = coverage()
    pages: dict[str, list[str]] = {}
    for tag in Guide.read(DOCS).tags:
        for item_id in tag.ids:
            pages.setdefault(item_id, []).append(f"{tag.page}#{tag.anchor}" if tag.anchor else tag.page)

    def first(found: list[str], missing: str) -> str:
        return found[0] + (f" (+{len(found) - 1})" if len(found) > 1 else "") if found else missing

    print(f"{'ID':5} {'item':44}  {'guide page':36}  {'tier':7}  tests")
    for item_id, item in cov.items.items():
        page = first(pages.get(item_id, []), "-- no page --")
        tests = first(cov.default_tests(item_id) or cov.tests[item_id], "-- no test --")
        print(f"{item_id:5} {item.text[:44]:44}  {page[:36]:36}  {cov.tier(item_id):7}  {tests}")
    covered = sum(1 for tests in cov.tests.values() if tests)
    print(f"\n{covered}/{len(cov.items)} items have tests; proved in the full tier only:")
    for item_id, reason in SLOW_ONLY.items():
        print(f"  {item_id}: {reason}")
    groups = tuple({i.group for i in cov.items.values()}) if all_groups else REQUIRED_GROUPS
    if found := problems(cov, groups):
        sys.exit("; ".join(found))


# --- the model --------------------------------------------------------------------------------


# --8<-- [start:model_tasks]
@task(
    help={
        "output": "folder for model.onnx, profile.json, manifest.json (default: the served digits folder)",
        "version": "the version it is (default: MODEL_VERSION in example_app/ml/training.py)",
        "profile_only": "only (re)write the reference profile of the model already there; its bytes stay",
    }
)
def train(c: Context, output: str = "", version: str = "", profile_only: bool = False) -> None:
    """Train the digits model (deterministic), write the ONNX artifact + manifest, print the
    metrics, and register the version in the database (DATABASE_URL, else the local server)."""
    from example_app.ml.artifact import DIGITS_MODEL_DIR
    from example_app.ml.training import MODEL_VERSION, add_profile, summary
    from example_app.ml.training import train as train_model

    folder = Path(output) if output else DIGITS_MODEL_DIR
    if profile_only:
        print(f"{folder / add_profile(folder).file} written and named in the manifest")
        return
    print(summary(train_model(folder, version or MODEL_VERSION), folder))
    # Without a database the artifact is still written: one line says so, and how to register it.
    _registry_command(c, "train", "register_folder", folder)


@task(name="model-register", help={"path": "a folder with manifest.json and its model file"})
def model_register(c: Context, path: str) -> None:
    """Register a trained artifact (checked first) as a version of its model."""
    _registry_command(c, "model-register", "register_folder", Path(path))


@task(
    name="model-alias",
    help={
        "name": "the model (digits)",
        "alias": "production, candidate or any name",
        "version": "e.g. 1.0.0",
    },
)
def model_alias(c: Context, name: str, alias: str, version: str) -> None:
    """Point an alias at a registered version; the app's processes switch without a restart."""
    _registry_command(c, "model-alias", "move_alias", name, alias, version)


def _registry_command(c: Context, task_name: str, command: str, *args: object) -> None:
    """Run a command of example_app/services/registry_commands.py on DATABASE_URL, else the local
    server (migrated first, as `serve` does); its one line, or its error in one line."""
    import asyncio

    from devtools.postgres_provider import ProviderError, provide
    from example_app.core.config import load_settings
    from example_app.services import registry_commands
    from example_app.services.registry_commands import CommandError

    try:
        with provide("DATABASE_URL", data_home=DATA_HOME, dbname="app") as server:
            if not os.environ.get("DATABASE_URL"):
                os.environ["DATABASE_URL"] = server.url  # for alembic, in its own process
                _alembic(c, "upgrade head")
            settings = load_settings(DATABASE_URL=server.url)
            print(asyncio.run(getattr(registry_commands, command)(settings, *args)))
    except (ProviderError, CommandError) as exc:
        if task_name != "train":
            sys.exit(f"{task_name}: {exc}")
        # train: the artifact is written either way; say whether and how to register it.
        if isinstance(exc, ProviderError) or exc.unreachable:
            print(f"not registered: {exc}; when it is up: python3 tasks.py model-register --path {args[0]}")
        else:
            sys.exit(f"train: the artifact is written, not registered: {exc}")


# --8<-- [end:model_tasks]


# --- docs -------------------------------------------------------------------------------------


@task(help={"port": "port (default 8001)"})
def docs(c: Context, port: int = 8001) -> None:
    """Serve the guide locally with live reload."""
    _run(c, f"{BIN}/mkdocs serve --livereload -a 127.0.0.1:{port}")


@task(name="docs-build")
def docs_build(c: Context) -> None:
    """Build the guide strictly into site/."""
    _run(c, f"{BIN}/mkdocs build --strict --site-dir site")


# --- quality ----------------------------------------------------------------------------------


@task
def lint(c: Context) -> None:
    """ruff check, ruff format --check and mypy."""
    _run(c, f"{BIN}/ruff check .")
    _run(c, f"{BIN}/ruff format --check .")
    _run(c, f"{BIN}/mypy")


@task
def fmt(c: Context) -> None:
    """Format and auto-fix with ruff."""
    _run(c, f"{BIN}/ruff format .")
    _run(c, f"{BIN}/ruff check --fix .")


# name -> the module whose main(seconds, connections, record) runs it (decision6 is the default).
BENCHMARKS = {
    "decision6": "bench.decision6",
    "ml-serving": "bench.ml_serving",
    "vector-search": "bench.vector_search",
    "jobs": "bench.jobs",
    "hot-path": "bench.hot_path",
    "hot-path-profile": "bench.profile",  # PF02: CPU per request by layer, the app beside the Core floor
    "scale-out": "bench.scale_out",  # 1 and 2 workers, direct and through PgBouncer
    "soak": "bench.soak",  # HD06: 60 s, 64 connections, mixed reads and writes; what is left after
    "log-reading": "bench.log_reading",  # ML05, ML08: keyset vs OFFSET; export streamed vs built whole
    "observability": "bench.observability",  # OB07: metrics and traces against neither, same run
    "drift": "bench.drift",  # LC05: drift reports on shifted and unshifted inputs (no load, no wrk)
    "shadow": "bench.shadow",  # LC03: the shadow report of a served app, every prediction shadowed
    "model-artifact": "bench.model_artifact",  # ONNX against joblib: load time, latency by batch size
}


@task(
    help={
        "name": f"which benchmark ({', '.join(BENCHMARKS)})",
        "seconds": "load per scenario (default: the benchmark's own)",
        "connections": "wrk connections (default: the benchmark's own)",
        "record": "also write the table and its JSON to bench/results/ (the figures the guide shows)",
    }
)
def bench(
    c: Context, name: str = "decision6", seconds: int = 0, connections: int = 0, record: bool = False
) -> None:
    """Side-by-side benchmarks under real HTTP load (wrk); prints ratios."""
    import importlib

    if name not in BENCHMARKS:
        sys.exit(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    from devtools.test_tools import ensure_tools

    ensure_tools("wrk")
    main = importlib.import_module(BENCHMARKS[name]).main
    main(
        *([seconds] if seconds else []),
        **({"connections": connections} if connections else {}),
        record=record,
    )


# --8<-- [start:fuzz]
@task(
    help={
        "cases": "generated cases per operation (default 700: about 13,000 in all)",
        "record": "also write the summary to bench/results/fuzz.txt (the figures the guide shows)",
    }
)
def fuzz(c: Context, cases: int = 700, record: bool = False) -> None:
    """A long schemathesis run against the served app on PostgreSQL; `test` runs a short one."""
    os.environ["FUZZ_CASES"] = str(cases)
    if record:
        os.environ["FUZZ_RECORD"] = "1"
    _run(c, f"{BIN}/pytest -q -s -p no:cacheprovider tests/hardening/test_fuzz.py")


# --8<-- [end:fuzz]


@task(name="docker-image", help={"tag": "image tag (default pgvector/pgvector:pg16)"})
def docker_image(c: Context, tag: str = "") -> None:
    """Build the PostgreSQL 16 + pgvector image offline from the pgserver wheel."""
    from devtools.docker_image import build
    from devtools.postgres_provider import DEFAULT_IMAGE

    build(tag or DEFAULT_IMAGE)


@task(name="app-image", help={"tag": "image tag (default fastapi-ml-guide/app:latest)"})
def app_image(c: Context, tag: str = "") -> None:
    """Build the app's image (Dockerfile) offline: a debootstrap Debian base, the pinned wheels."""
    from devtools.app_image import APP_TAG, ImageError, build

    try:
        print(build(tag or APP_TAG))
    except ImageError as exc:
        sys.exit(f"app-image: {exc}")


# --- database (alembic) ----------------------------------------------------------------------


@task(help={"revision": "target revision (default head)"})
def upgrade(c: Context, revision: str = "head") -> None:
    """alembic upgrade <revision>."""
    with _database():
        _alembic(c, f"upgrade {revision}")


@task(help={"revision": "target revision (default -1)"})
def downgrade(c: Context, revision: str = "-1") -> None:
    """alembic downgrade <revision>."""
    with _database():
        _alembic(c, f"downgrade {revision}")


@task(
    help={
        "message": "what the revision does, e.g. 'add posts table'",
        "empty": "no autogenerate (manual SQL)",
    }
)
def revision(c: Context, message: str, empty: bool = False) -> None:
    """Autogenerate a revision from the models (on an up-to-date database)."""
    if not message.strip():
        sys.exit("a revision needs a message: --message 'add posts table'")
    with _database():
        if not empty:
            _alembic(c, "upgrade head")  # autogenerate compares against the latest schema
        flag = "" if empty else "--autogenerate "
        _alembic(c, f"revision {flag}-m {message!r}")


@task
def current(c: Context) -> None:
    """alembic current."""
    with _database():
        _alembic(c, "current --verbose")


@task
def history(c: Context) -> None:
    """alembic history."""
    _alembic(c, "history --indicate-current" if os.environ.get("DATABASE_URL") else "history")


@task
def reset(c: Context) -> None:
    """Development reset: downgrade to base, then upgrade to head (data is lost)."""
    with _database():
        _alembic(c, "downgrade base")
        _alembic(c, "upgrade head")


# --8<-- [start:create_superuser]
@task(
    name="create-superuser",
    help={"email": "the account's email", "name": "display name (default: Administrator)"},
)
def create_superuser(c: Context, email: str, name: str = "Administrator") -> None:
    """Create a superuser, or make an existing account one. Password: prompted, or SUPERUSER_PASSWORD."""
    import asyncio

    with _database():
        _run(c, f"{BIN}/alembic upgrade head", in_stream=False)  # leave standard input to getpass
        asyncio.run(_create_superuser(email, name))


async def _create_superuser(email: str, name: str) -> None:
    from pydantic import ValidationError

    from example_app.core.config import get_settings
    from example_app.core.database import create_engine, create_sessionmaker
    from example_app.core.security import Passwords
    from example_app.schemas.user import UserCreate
    from example_app.services.user import UserService

    settings = get_settings()
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            service = UserService(session, Passwords.from_settings(settings))
            if (user := await service.get_by_email(email)) is not None:
                user.is_superuser = user.is_active = True
                await session.commit()
                print(f"{user.email} already had an account: now an active superuser (password unchanged)")
                return
            try:
                data = UserCreate(email=email, password=_new_password(), name=name)
            except ValidationError as error:
                problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors(include_input=False))
                sys.exit(f"create-superuser: {problems}")
            user = await service.create(data, is_superuser=True)
            print(f"superuser {user.email} created (id {user.id})")
    finally:
        await engine.dispose()


def _new_password() -> str:
    """SUPERUSER_PASSWORD for scripts; else asked twice, without echo."""
    import getpass

    if password := os.environ.get("SUPERUSER_PASSWORD"):
        return password
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != password:
        sys.exit("create-superuser: the two passwords differ")
    return password


# --8<-- [end:create_superuser]


db = Collection("db", upgrade, downgrade, revision, current, history, reset)
ns = Collection(
    serve,
    worker,
    create_superuser,
    test,
    patterns,
    bench,
    fuzz,
    train,
    model_register,
    model_alias,
    docs,
    docs_build,
    lint,
    fmt,
    docker_image,
    app_image,
    db,
)


if __name__ == "__main__":
    Program(namespace=ns, version="0.1.0").run()
