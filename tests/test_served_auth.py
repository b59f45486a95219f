"""Authentication on the app as served: uvicorn in a process of its own, on a migrated database."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alembic import command
from devtools.docs_source import iter_fences
from tests.support import ROOT, NewDatabase, ServedApp, alembic_config, served_app

pytestmark = pytest.mark.system("the app served by uvicorn in a process of its own")

MiB = 1024 * 1024


@pytest.fixture
def migrated_url(scratch_url: str) -> str:
    """An empty database of the test's own, migrated to head (the served app commits)."""
    command.upgrade(alembic_config(scratch_url), "head")
    return scratch_url


@pytest.fixture
def app(migrated_url: str) -> Iterator[ServedApp]:
    with served_app(migrated_url) as served:
        yield served


@pytest.mark.pattern("AU02")
def test_an_anonymous_delete_is_401_on_the_served_app(app: ServedApp) -> None:
    body = {"email": "kept@example.com", "password": "correct horse", "name": "Kept"}
    user = httpx.post(f"{app.url}/api/v1/users", json=body).json()
    response = httpx.delete(f"{app.url}/api/v1/users/{user['id']}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    token = httpx.post(
        f"{app.url}/api/v1/auth/token", data={"username": body["email"], "password": body["password"]}
    ).json()["access_token"]
    mine = httpx.get(f"{app.url}/api/v1/users/{user['id']}", headers={"Authorization": f"Bearer {token}"})
    assert mine.json()["name"] == "Kept"  # still there


def documented_session(page: str) -> list[str]:
    """The bash block of a page that obtains a token with curl and sends it."""
    text = (ROOT / "docs" / page).read_text()
    [block] = [
        f.body for f in iter_fences(text, page) if f.lang == "bash" and any("TOKEN=" in x for x in f.body)
    ]
    return [line for line in block if line.strip() and not line.startswith("#")]


@pytest.mark.pattern("AU01", "W09")
def test_the_documented_curl_sessions_work(app: ServedApp, tmp_path: Path) -> None:
    """The Quick start's curl lines, then Adding a feature's, run by bash against this server."""
    for page in ("quick-start.md", "adding-a-feature.md"):
        lines = [line.replace("http://127.0.0.1:8000", app.url) for line in documented_session(page)]
        script = tmp_path / "session.sh"
        script.write_text("set -euo pipefail\n" + "\n".join(f"{line}\necho" for line in lines) + "\n")
        result = subprocess.run(["bash", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{page}: {result.stderr}"
        answers = [line for line in result.stdout.splitlines() if line.strip()]
        assert len(answers) == len([line for line in lines if not line.startswith("TOKEN=")]), page
        assert '"detail"' not in result.stdout, f"{page}: {result.stdout}"  # no error body anywhere
        assert '"author_id":1' in result.stdout.replace(" ", ""), page  # Ada wrote the post


# --- AU07: the hashing budget -----------------------------------------------------------------------


def rss(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


async def sign_up(url: str, names: list[str]) -> list[int]:
    """POST /users for each name, all at once; a 503 (overloaded: Retry-After) is sent again."""

    async def one(http: httpx.AsyncClient, name: str) -> int:
        body = {"email": f"{name}@example.com", "password": "correct horse", "name": name}
        for _ in range(5):
            response = await http.post("/api/v1/users", json=body)
            if response.status_code != 503:
                break
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        return response.status_code

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        return list(await asyncio.gather(*(one(http, name) for name in names)))


def peak_growth_at_48_sign_ups(database_url: str, concurrency: int) -> int:
    """How far above its resting RSS the server's memory peaks while 48 sign-ups run at once."""
    with served_app(database_url, PASSWORD_HASH_CONCURRENCY=str(concurrency)) as served:
        pid = served.process.pid
        assert asyncio.run(sign_up(served.url, ["warm"])) == [201]  # first hash, pool, imports
        resting = rss(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        statuses = asyncio.run(sign_up(served.url, [f"user{n}" for n in range(48)]))
        peak = rss(pid, "VmHWM")
    assert statuses == [201] * 48
    return peak - resting


# --8<-- [start:test_hashing_budget]
HASHING_CEILING = 256 * MiB  # twice PASSWORD_HASH_CONCURRENCY (2) x 64 MiB: room for the rest


@pytest.mark.pattern("AU07")
def test_48_concurrent_sign_ups_stay_under_the_memory_ceiling(new_database: NewDatabase) -> None:
    urls = [new_database(), new_database()]
    for url in urls:
        command.upgrade(alembic_config(url), "head")
    bounded = peak_growth_at_48_sign_ups(urls[0], concurrency=2)  # the default setting
    unbounded = peak_growth_at_48_sign_ups(urls[1], concurrency=48)  # no limiter in effect
    print(
        f"AU07 peak RSS growth at 48 sign-ups: {bounded / MiB:.0f} MiB bounded, {unbounded / MiB:.0f} MiB not"
    )
    assert bounded < HASHING_CEILING
    assert unbounded > 2 * HASHING_CEILING  # the limiter is what keeps it down


# --8<-- [end:test_hashing_budget]
