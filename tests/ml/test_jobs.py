"""GET /api/v1/jobs/{id} and its server-sent events, and search end to end with a real worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.jobs.workers import worker
from tests.support import Caller, path


async def create_post(client: AsyncClient, headers: dict[str, str], **body: str) -> tuple[int, str]:
    created = await client.post(path("create_post"), json=body, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.headers["Embedding-Job"]


@pytest.mark.pattern("ML07")
async def test_a_created_post_links_its_job_and_the_job_shows_its_status(
    client: AsyncClient, caller: Caller
) -> None:
    post_id, job_url = await create_post(client, caller.headers, title="Status", body="Queued, not run.")
    job_id = int(job_url.rsplit("/", 1)[1])
    assert job_url == path("get_job", job_id=job_id)

    job = await client.get(job_url, headers=caller.headers)
    assert job.status_code == 200
    assert job.json() == {
        "id": job_id,
        "task": "embed_post",
        "args": {"post_id": post_id},
        "status": "todo",  # no worker in this test: queued, in the test's transaction
        "attempts": 0,
        "scheduled_at": None,
    }

    edited = await client.patch(
        path("update_post", post_id=post_id), json={"title": "New"}, headers=caller.headers
    )
    assert edited.headers["Embedding-Job"] != job_url  # a new job for the new text
    tags = await client.patch(
        path("update_post", post_id=post_id), json={"tags": ["x"]}, headers=caller.headers
    )
    assert "Embedding-Job" not in tags.headers  # the embedded text is unchanged


@pytest.mark.pattern("ML07")
async def test_jobs_need_a_logged_in_user(client: AsyncClient) -> None:
    client.headers.pop("Authorization")  # this directory's client is signed in (conftest.py)
    assert (await client.get(path("get_job", job_id=1))).status_code == 401
    assert (await client.get(path("job_events", job_id=1))).status_code == 401


@pytest.mark.pattern("ML07")
async def test_an_unknown_job_is_a_404_and_an_impossible_id_a_422(
    client: AsyncClient, caller: Caller
) -> None:
    assert (await client.get(path("get_job", job_id=2**62), headers=caller.headers)).status_code == 404
    assert (await client.get(path("job_events", job_id=2**62), headers=caller.headers)).status_code == 404
    assert (await client.get(path("get_job", job_id=2**63), headers=caller.headers)).status_code == 422


def events(stream: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body: their fields, data decoded."""
    found = []
    for block in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        found.append({**fields, "data": json.loads(fields["data"])})
    return found


# --8<-- [start:end_to_end]
@pytest.mark.system("a worker process embeds the post")
@pytest.mark.pattern("ML07", "ML08", "ML11")
async def test_a_post_becomes_findable_once_its_job_ran_and_the_stream_shows_each_step(
    live_client: AsyncClient, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    headers = dict(live_client.headers)  # signed in (tests/ml/conftest.py)
    post_id, job_url = await create_post(
        live_client, headers, title="Bread at home", body="Knead the dough, let it rise, bake it hot."
    )
    search = {"q": "baking a loaf of bread"}
    assert (await live_client.get(path("search_posts"), params=search, headers=headers)).json() == []

    # The stream opens while no worker runs: it has said "todo", and waits, holding nothing.
    stream = asyncio.create_task(live_client.get(f"{job_url}/events", headers=headers))
    await asyncio.sleep(1.5)
    async with engine.connect() as conn:
        idle_in_transaction = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        assert idle_in_transaction.scalar_one() == 0

    with worker(database_url, tmp_path, "e2e"):
        answer = await asyncio.wait_for(stream, timeout=60)  # the stream ends with the job
    assert answer.headers["content-type"].startswith("text/event-stream")
    steps = events(answer.text)
    assert [step["data"]["status"] for step in steps] == ["todo", "doing", "succeeded"]
    assert {step["event"] for step in steps} == {"status"}
    assert [int(step["id"]) for step in steps] == sorted(step["data"]["id"] for step in steps)

    job = await live_client.get(job_url, headers=headers)
    assert job.json()["status"] == "succeeded"
    found = (await live_client.get(path("search_posts"), params=search, headers=headers)).json()
    assert [hit["id"] for hit in found] == [post_id]

    # A client that reconnects with the last id it saw gets nothing again, and the stream ends.
    again = await live_client.get(f"{job_url}/events", headers={**headers, "Last-Event-ID": steps[-1]["id"]})
    assert again.status_code == 200
    assert again.text.strip() == ""


# --8<-- [end:end_to_end]
