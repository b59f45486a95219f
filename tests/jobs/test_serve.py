"""`python3 tasks.py serve` as a newcomer runs it: the app and a worker, search end to end, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devtools.postgres_provider import free_port
from tests.jobs.workers import TEST_WORKER_ENV, wait_for
from tests.support import PASSWORD, ROOT, path

pytestmark = pytest.mark.system("python3 tasks.py serve as a process, stopped with Ctrl-C")


def children_running(parent: int, marker: str) -> list[int]:
    """Processes whose parent is `parent` and whose command line contains `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and marker in cmdline:
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def reaped(pid: int) -> bool:
    """Gone from the process table: its parent has collected its exit status."""
    return not Path(f"/proc/{pid}").exists()


# --8<-- [start:serve_test]
@pytest.mark.pattern("ML07", "ML11")
def test_serve_runs_a_worker_so_a_new_post_is_found_by_meaning_and_ctrl_c_stops_both(
    scratch_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, **TEST_WORKER_ENV, "DATABASE_URL": scratch_url}
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "tasks.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it: Ctrl-C goes to the group
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base + path("health")), 90, "the app to answer")
        (worker,) = children_running(serve.pid, "example_app.jobs.worker")
        with httpx.Client(base_url=base, timeout=10) as http:
            account = {"email": "newcomer@example.com", "password": PASSWORD, "name": "New"}
            assert http.post(path("create_user"), json=account).status_code == 201
            token = http.post(path("login"), data={"username": account["email"], "password": PASSWORD})
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            post = http.post(
                path("create_post"), json={"title": "Tomato soup", "body": "Simmer ripe tomatoes, blend."}
            )
            assert post.status_code == 201

            def found() -> bool:
                hits = http.get(path("search_posts"), params={"q": "a recipe for a vegetable soup"}).json()
                return [hit["id"] for hit in hits] == [post.json()["id"]]

            wait_for(found, 30, "the post to be found by meaning", interval=0.5)

        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        serve.wait(timeout=60)  # the app stops...
        assert not alive(worker)  # the worker stopped too (told once, by serve)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text(errors="replace")
    assert "embed_post" in output  # the worker's log lines are in serve's output


# --8<-- [end:serve_test]


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.2)
        return False


# --8<-- [start:killed_worker_test]
@pytest.mark.pattern("ML07")
def test_serve_starts_a_killed_worker_again_and_the_new_one_takes_the_queue(
    scratch_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, **TEST_WORKER_ENV, "DATABASE_URL": scratch_url}
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    serve = subprocess.Popen(
        [sys.executable, "tasks.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base + path("health")), 90, "the app to answer")
        (first,) = children_running(serve.pid, "example_app.jobs.worker")
        os.kill(first, signal.SIGKILL)  # the OOM killer's way: no clean-up, no goodbye
        wait_for(lambda: reaped(first), 10, "serve to reap the killed worker")  # not left <defunct>
        wait_for(lambda: children_running(serve.pid, "example_app.jobs.worker") != [], 30, "another worker")
        (second,) = children_running(serve.pid, "example_app.jobs.worker")
        assert second != first

        with httpx.Client(base_url=base, timeout=10) as http:  # a post written after the kill
            account = {"email": "survivor@example.com", "password": PASSWORD, "name": "S"}
            assert http.post(path("create_user"), json=account).status_code == 201
            token = http.post(path("login"), data={"username": account["email"], "password": PASSWORD})
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            post = http.post(path("create_post"), json={"title": "Kept", "body": "Embedded all the same."})
            job = post.headers["Embedding-Job"]
            wait_for(lambda: http.get(job).json()["status"] == "succeeded", 60, "the new worker to embed it")

        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=60)
        assert not alive(second)  # stopped with serve; no third one started
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        log.close()
    output = log_path.read_text(errors="replace")
    assert output.count("job worker exited") == 1, output
    assert "job worker exited (killed by SIGKILL); starting another in 1 s" in output


# --8<-- [end:killed_worker_test]
