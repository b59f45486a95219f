"""DP04: one of two instances restarted under load; no request fails.

The client does what a load balancer does, and no more: a connection that is refused (the
instance is not listening) goes to the other instance. Nothing else is retried: a request that
an instance accepted must be answered, by that instance, also when it is told to stop.

The restart is a deployment's: take the instance out of the balancer, let the connections
already made arrive (DRAIN), then SIGTERM. Without the first two steps a connection accepted
just before SIGTERM, whose request uvicorn has not read yet, is closed unanswered ("Server
disconnected without sending a response"): the first run of this test, without them, lost one.

So that SIGTERM always meets requests in flight (on an idle machine a request is over in a few
milliseconds), a few sign-ups sent to the stopped instance are held in the database by a table
lock the test takes, and let go one second after SIGTERM.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from alembic import command
from devtools.postgres_provider import free_port
from tests.support import ROOT, NewDatabase, alembic_config

pytestmark = pytest.mark.system("two served instances, one restarted by a signal under load")

CLIENTS = 6  # steady load that leaves the restarted instance CPU to start on 2 cores
# uvicorn's --timeout-graceful-shutdown: on SIGTERM it stops listening, then waits up to this
# long for the requests it has accepted, then runs the lifespan's shutdown.
GRACEFUL_SECONDS = "30"


@contextlib.contextmanager
def instance(database_url: str) -> Iterator[str]:
    """An instance of the app (uvicorn, as `serve` runs it); SIGTERM at the end of the `with`.

    Like tests.support.served_app, with more time to start: here it starts beside the load.
    """
    port = free_port()
    cmd = [str(ROOT / "venv" / "bin" / "uvicorn"), "example_app.main:app", "--port", str(port)]
    server = subprocess.Popen(
        [*cmd, "--timeout-graceful-shutdown", GRACEFUL_SECONDS],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200:
                    break
            assert server.poll() is None, "the instance exited"
            assert time.monotonic() < deadline, "the instance did not answer within 180 s"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()  # SIGTERM
        server.wait(timeout=60)


DRAIN = 0.3  # seconds between leaving the balancer and SIGTERM (Kubernetes: a preStop sleep)
HELD = 3  # sign-ups in flight on the stopped instance at SIGTERM


@dataclass
class Held:
    """HELD sign-ups sent to one instance and kept waiting in PostgreSQL until `release` is set.

    The test's own transaction inserts the same emails first and does not commit: the app's
    INSERT waits on the unique index for that transaction, which then rolls back, and the
    sign-ups go through (201). Only these sign-ups wait; the load's other requests do not.
    """

    database_url: str
    url: str
    answers: list[tuple[int, float]] = field(default_factory=list)  # status, when answered
    locked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def hold(self) -> None:
        with psycopg.connect(self.database_url.replace("+asyncpg", "")) as conn:
            for n in range(HELD):
                conn.execute(
                    "INSERT INTO users (email, hashed_password, name, created_at, updated_at)"
                    " VALUES (%s, 'x', 'held', now(), now())",
                    (f"held{n}@example.com",),
                )
            self.locked.set()
            self.release.wait(timeout=60)
            conn.rollback()

    def sign_up(self, n: int) -> None:
        body = {"email": f"held{n}@example.com", "password": "correct horse", "name": f"H{n}"}
        response = httpx.post(f"{self.url}/api/v1/users", json=body, timeout=60)
        self.answers.append((response.status_code, time.monotonic()))

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """The sign-ups are waiting in the database when the block starts."""
        threads = [threading.Thread(target=self.hold)]
        threads[0].start()
        assert self.locked.wait(timeout=30)
        threads += [threading.Thread(target=self.sign_up, args=(n,)) for n in range(HELD)]
        for thread in threads[1:]:
            thread.start()
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'transactionid'"
        try:
            with psycopg.connect(self.database_url.replace("+asyncpg", ""), autocommit=True) as watch:
                deadline = time.monotonic() + 60
                while (row := watch.execute(waiting).fetchone()) is None or row[0] < HELD:
                    assert time.monotonic() < deadline, "the held sign-ups did not reach the database"
                    time.sleep(0.05)
            yield
        finally:
            self.release.set()
            for thread in threads:
                thread.join(timeout=60)


@dataclass
class Load:
    """CLIENTS threads, each a client sending one request after another to the instances."""

    targets: list[str]
    done: list[tuple[str, float, float, int]] = field(default_factory=list)  # url, start, end, status
    failed: list[str] = field(default_factory=list)
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    emails: itertools.count[int] = field(default_factory=itertools.count)

    def request(self, turn: int) -> None:
        targets = list(self.targets)  # the balancer's list at this moment
        for url in targets[turn % len(targets) :] + targets[: turn % len(targets)]:
            start = time.monotonic()
            try:
                if turn % 4 == 0:  # a write: a sign-up (an Argon2 hash, a commit): long in flight
                    n = next(self.emails)
                    body = {"email": f"load{n}@example.com", "password": "correct horse", "name": f"L{n}"}
                    response = httpx.post(f"{url}/api/v1/users", json=body, timeout=60)
                    expected = 201
                else:
                    response = httpx.get(f"{url}/api/v1/posts", timeout=60)
                    expected = 200
            except httpx.ConnectError as exc:
                if "refused" not in str(exc).lower():
                    self.failed.append(f"{url}: {exc!r}")
                    return
                self.refused += 1
                continue  # not listening: the next instance
            except httpx.TransportError as exc:  # accepted, then dropped: a failed request
                self.failed.append(f"{url}: {exc!r}")
                return
            self.done.append((url, start, time.monotonic(), response.status_code))
            if response.status_code != expected:
                self.failed.append(f"{url}: {response.status_code} {response.text[:200]}")
            return
        self.failed.append("no instance accepted the connection")

    def client(self, number: int) -> None:
        for turn in itertools.count(number):
            if self.stop.is_set():
                return
            self.request(turn)
            time.sleep(0.1)  # about 50 requests a second in all: 2 shared cores also start a2


# --8<-- [start:restart]
@pytest.mark.pattern("DP04")
def test_restarting_one_of_two_instances_under_load_fails_no_request(new_database: NewDatabase) -> None:
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    with ExitStack() as stack:
        first = instance(url)
        a = first.__enter__()
        b = stack.enter_context(instance(url))
        load = Load([a, b])
        clients = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(3)
            held = Held(url, a)
            with held.in_flight():  # HELD sign-ups on a, waiting in the database
                load.targets.remove(a)  # 1. out of the balancer: new requests go to b
                time.sleep(DRAIN)  # 2. what was sent to a is read by a
                sigterm = time.monotonic()  # 3. SIGTERM: a stops listening, answers what it has
                threading.Timer(1.0, held.release.set).start()  # the lock goes 1 s after SIGTERM
                first.__exit__(None, None, None)  # SIGTERM; returns when the process has exited
                stopped = time.monotonic()
            a2 = stack.enter_context(instance(url))  # the restarted instance
            load.targets.append(a2)
            time.sleep(3)
        finally:
            load.stop.set()
            for thread in clients:
                thread.join(timeout=90)

    assert load.failed == []
    # the held sign-ups were in flight at SIGTERM and answered after it, by the stopping instance
    assert [status for status, _ in held.answers] == [201] * HELD
    assert all(sigterm + 1.0 <= answered <= stopped for _, answered in held.answers)
    across = [d for d in load.done if d[0] == a and d[1] < sigterm < d[2]]
    assert all(status in (200, 201) for _, _, _, status in across)
    assert any(d[0] == a2 for d in load.done)  # the restarted instance serves again
    print(
        f"{len(load.done)} requests, 0 failed, {load.refused} refused and sent on, "
        f"{HELD} held sign-ups and {len(across)} other requests in flight on the stopped instance "
        f"at SIGTERM, all answered; it stopped in {stopped - sigterm:.2f} s"
    )


# --8<-- [end:restart]
