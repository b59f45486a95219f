"""Every shell command shown on the guide's pages is one that CI or the test suite really runs.

A command in a `bash` block of a page must be, exactly, one of:

- a line of `.ci/run` (CI runs it on a fresh machine);
- in RUN_HERE: this module runs it, as written, from the project root on an empty database;
- in RUN_BY_TESTS: another test runs it (its arguments are string constants of that test);
- in NOT_RUN, with the reason nothing runs it.

A command on a page that is in none of these, or an entry that no page shows any more, fails.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.docs_source import iter_fences, pages
from tests.support import ROOT

SHELL_LANGS = {"bash", "console"}
CI_SCRIPT = ROOT / ".ci" / "run"

# Run by test_the_documented_commands_work below, on one empty database: the first list in this
# order, the second (which does not touch the database) alongside it.
RUN_HERE_IN_ORDER = [
    "python3 tasks.py db.upgrade",
    "alembic check",
    "alembic downgrade -1",
    "alembic upgrade +1",
    "python3 tasks.py db.downgrade",
    "alembic downgrade 482500eb8bf1",
    "venv/bin/alembic upgrade head",
    "python3 tasks.py db.reset",
]
RUN_HERE_ANY_ORDER = [
    "alembic heads",
    "alembic history",
    "alembic upgrade f1fb7f777147:head --sql",
    "python3 tasks.py --list",
]
RUN_HERE = RUN_HERE_IN_ORDER + RUN_HERE_ANY_ORDER

RUN_BY_TESTS = {
    "alembic current": "tests/migrations/test_workflow_commands.py::test_current_and_history_name_the_head",
    "alembic upgrade head": (
        "tests/migrations/test_troubleshooting.py::test_two_heads_are_detected_and_merged"
    ),
    'alembic merge -m "merge heads" heads': (
        "tests/migrations/test_troubleshooting.py::test_two_heads_are_detected_and_merged"
    ),
    "alembic upgrade head --sql": (
        "tests/migrations/test_workflow_commands.py::test_offline_sql_for_the_pending_range_only"
    ),
}

CURL_SESSION = (
    "needs the server above; tests/test_served_auth.py::test_the_documented_curl_sessions_work "
    "runs the Quick start's and Adding a feature's lines with bash against a served app"
)

NOT_RUN = {
    "python3 tasks.py train": (
        "rewrites the committed artifact; tests/ml/test_artifact.py runs the same training into a "
        "temporary folder and compares its metrics with the committed manifest"
    ),
    "python3 tasks.py serve": (
        "serves until stopped, on the fixed port 8000; tests/test_project.py runs the same uvicorn "
        "command on a free port against a migrated database and checks /api/v1/health"
    ),
    "python3 tasks.py serve --workers 2": (
        "serves until stopped, on the fixed port 8000; tests/deployment/test_connection_budget.py "
        "runs it on a free port (two workers start; over budget, it stops with one line)"
    ),
    "python3 tasks.py bench": (
        "a load benchmark: minutes of wrk traffic per variant, results that depend on the machine; "
        "tests/test_blocking.py checks the effect it measures on every run"
    ),
    "python3 tasks.py bench --name hot-path": (
        "a load benchmark of minutes, with results that depend on the machine; "
        "tests/bench/test_scenarios.py runs it briefly in the full tier, and tests/test_hot_path.py "
        "checks the round trips it depends on"
    ),
    "python3 tasks.py fuzz --cases 500 --record": (
        "about 9,000 generated requests, minutes of them, and it rewrites bench/results/fuzz.txt; "
        "tests/hardening/test_fuzz.py runs the same harness with 60 cases per operation in the full tier"
    ),
    "python3 tasks.py bench --name soak --record": (
        "60 s of load with results that depend on the machine, and it rewrites "
        "bench/results/soak.txt; tests/hardening/test_soak.py runs the same soak for 4 s in the full tier"
    ),
    "curl http://127.0.0.1:8000/api/v1/health": (
        "needs the server above; the tests send the same request with httpx"
    ),
    (
        'curl -X POST http://127.0.0.1:8000/api/v1/predictions -H "Authorization: Bearer $TOKEN" '
        '-H "Content-Type: application/json" -d @example_app/ml/artifacts/digits/example-request.json'
    ): (
        "needs the server above; tests/test_project.py sends the same file to the same route of a "
        "uvicorn on a migrated database and finds the logged row"
    ),
    'python3 tasks.py test --args "-k health"': (
        "a part of `python3 tasks.py test`, which CI runs; running it inside the suite would run "
        "those tests twice"
    ),
    'python3 tasks.py test --args "tests/api/test_posts.py"': "the same: a part of the whole suite",
    "python3 tasks.py test --all": (
        "the full tier, roughly 15 minutes of browsers, processes, images and load, and the default "
        "tier again; run inside the suite it would run the suite inside itself. .ci/run runs it once"
    ),
    'python3 tasks.py db.revision --message "add posts table"': (
        "writes a new file into alembic/versions/; tests/migrations/test_autogenerate.py runs the "
        "same autogenerate, in a copy of alembic/, and applies the result"
    ),
    'python3 tasks.py db.revision --message "add posts created_at index concurrently" --empty': (
        "the same: it would add a revision to the repository"
    ),
    "python3 -m venv venv": (
        "the manual form of what tasks.py's bootstrap does; CI's first `python3 tasks.py` on a fresh "
        "machine creates the venv and installs the pins that way"
    ),
    "venv/bin/pip install -r requirements-dev.txt": "the same: part of the bootstrap, run by CI",
    "venv/bin/pip install --no-deps -e .": "the same: part of the bootstrap, run by CI",
    'export DATABASE_URL="postgresql+asyncpg://app:secret@localhost:5432/app"': (
        "sets a variable in the reader's shell for a server of theirs; the tests set DATABASE_URL "
        "for every command they run"
    ),
    'curl -X POST http://127.0.0.1:8000/api/v1/users -H "Content-Type: application/json" -d \'{"email": '
    '"ada@example.com", "password": "correct horse", "name": "Ada"}\'': CURL_SESSION,
    (
        "TOKEN=$(curl -s -X POST http://127.0.0.1:8000/api/v1/auth/token -d username=ada@example.com -d "
        '"password=correct horse" | python3 -c "import json, sys; '
        "print(json.load(sys.stdin)['access_token'])\")"
    ): CURL_SESSION,
    (
        'curl -X POST http://127.0.0.1:8000/api/v1/posts -H "Authorization: Bearer $TOKEN" -H '
        '"Content-Type: application/json" -d \'{"title": "Hello", "body": "My first post."}\''
    ): CURL_SESSION,
    (
        'curl -X POST http://127.0.0.1:8000/api/v1/posts -H "Authorization: Bearer $TOKEN" -H '
        '"Content-Type: application/json" -d \'{"title": "Hello, World!", "body": "First post.", '
        '"tags": ["ml"]}\''
    ): CURL_SESSION,
    "curl http://127.0.0.1:8000/api/v1/posts": CURL_SESSION,
    "python3 tasks.py create-superuser --email admin@example.com": (
        "asks for a password on the terminal and writes to the serve database; "
        "tests/test_superuser.py runs the task on a scratch database, with the password from "
        "SUPERUSER_PASSWORD and from standard input"
    ),
    "export SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\"": (
        "sets a variable in the reader's shell; the tests set SECRET_KEY for every process they start "
        "(tests/conftest.py), and tests/test_settings.py starts the app without one"
    ),
    "venv/bin/uvicorn example_app.main:app --reload": (
        "--reload watches the files until stopped; tests/test_project.py runs "
        "`uvicorn example_app.main:app` on a loopback port and asks it for its health"
    ),
}

# How tests/migrations/workspace.py runs each program as a subprocess, as a reader would.
RUNNERS = {("python3", "tasks.py"): "task", ("alembic",): "alembic"}


def documented_commands() -> dict[str, list[str]]:
    """command -> the pages that show it."""
    found: dict[str, list[str]] = {}
    for page, text in pages().items():
        for fence in iter_fences(text, page):
            if fence.lang in SHELL_LANGS:
                for line in fence.body:
                    command = line.strip()
                    if command and not command.startswith("#"):
                        found.setdefault(command, []).append(page)
    return found


def test_every_command_on_the_pages_is_accounted_for() -> None:
    ci = CI_SCRIPT.read_text().splitlines()
    known = {*RUN_HERE, *RUN_BY_TESTS, *NOT_RUN}
    for command, where in documented_commands().items():
        in_ci = any(line.strip() == command or line.strip().endswith(f" {command}") for line in ci)
        assert in_ci or command in known, f"{command!r} ({', '.join(where)}) is run by nothing"
    assert len(known) == len(RUN_HERE) + len(RUN_BY_TESTS) + len(NOT_RUN)  # no command listed twice


def test_every_listed_command_is_still_on_a_page() -> None:
    shown = documented_commands()
    stale = [c for c in [*RUN_HERE, *RUN_BY_TESTS, *NOT_RUN] if c not in shown]
    assert stale == []
    assert "python3 tasks.py test" in shown  # the README's command, shown and run by CI
    assert "python3 tasks.py test" in CI_SCRIPT.read_text()


def test_commands_run_by_other_tests_are_really_in_them() -> None:
    for command, node_id in RUN_BY_TESTS.items():
        path, name = node_id.split("::")
        [function] = [
            node
            for node in ast.walk(ast.parse((ROOT / path).read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        ]
        words = shlex.split(command)
        program, runner = next((p, r) for p, r in RUNNERS.items() if tuple(words[: len(p)]) == p)
        nodes = list(ast.walk(function))
        calls = {n.func.id for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert runner in calls, f"{node_id} runs no {' '.join(program)} command"
        constants = {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        missing = [word for word in words[len(program) :] if word not in constants]
        assert missing == [], f"{node_id} does not run {command!r}: no {missing}"


def _run(command: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{ROOT / 'venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "POSTGRES_PROVIDER": "url",  # the db.* tasks use DATABASE_URL, whatever the suite uses
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.system("every documented command, each a process")
def test_the_documented_commands_work(scratch_url: str) -> None:
    def in_order() -> dict[str, subprocess.CompletedProcess[str]]:
        done = {}
        for command in RUN_HERE_IN_ORDER:
            done[command] = _run(command, scratch_url)
            if done[command].returncode != 0:
                break  # the next ones depend on this one
        return done

    with ThreadPoolExecutor(max_workers=3) as pool:
        sequence = pool.submit(in_order)
        others = {command: pool.submit(_run, command, scratch_url) for command in RUN_HERE_ANY_ORDER}
        results = {**sequence.result(), **{command: f.result() for command, f in others.items()}}
    for command in RUN_HERE:
        result = results[command]
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    assert len(results["alembic heads"].stdout.splitlines()) == 1  # one head
    assert "initial empty schema" in results["alembic history"].stdout
    offline = results["alembic upgrade f1fb7f777147:head --sql"].stdout
    assert "CREATE INDEX CONCURRENTLY" in offline
    assert "CREATE TABLE users" not in offline
    assert "db.revision" in results["python3 tasks.py --list"].stdout
