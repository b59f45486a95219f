"""Creating or editing a post queues "embed post N" in the same transaction as the write (ML07).

These tests commit for real (on the session's database, cleaning up after themselves): a
rolled-back transaction proves nothing about what another connection would see otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.jobs.tasks import defer_embedding
from example_app.models import Post, User
from example_app.schemas.post import PostCreate, PostUpdate
from example_app.services.errors import InvalidReferenceError
from example_app.services.post import PostService

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[Sessions]:
    """Sessions that commit, like the app's; what they wrote is removed afterwards."""
    yield async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM procrastinate_jobs WHERE lock LIKE 'post:%'"))
        await conn.execute(text("DELETE FROM users WHERE email LIKE 'enqueue-%'"))


@pytest.fixture
async def author(sessions: Sessions) -> User:
    async with sessions() as db:
        user = User(email="enqueue-author@example.com", hashed_password="x", name="Author")
        db.add(user)
        await db.commit()
        return user


async def jobs_for(sessions: Sessions, post_id: int | None) -> list[dict[str, Any]]:
    """The embedding jobs of a post, as any other connection sees them (committed only)."""
    async with sessions() as db:
        rows = await (await db.connection()).execute(
            text("SELECT id, task_name, args, status::text FROM procrastinate_jobs WHERE lock = :lock"),
            {"lock": f"post:{post_id}"},
        )
        return [dict(row) for row in rows.mappings()]


async def posts_titled(sessions: Sessions, title: str) -> int:
    async with sessions() as db:
        found = await (await db.connection()).execute(
            text("SELECT count(*) FROM posts WHERE title = :t"), {"t": title}
        )
        return int(found.scalar_one())


# --8<-- [start:atomic]
@pytest.mark.pattern("ML07", "ML11")
async def test_a_created_post_and_its_job_commit_together(sessions: Sessions, author: User) -> None:
    async with sessions() as db:
        service = PostService(db)
        post = await service.create(author, PostCreate(title="Committed", body="Both rows exist."))
    assert await jobs_for(sessions, post.id) == [
        {
            "id": service.embedding_job,
            "task_name": "embed_post",
            "args": {"post_id": post.id},
            "status": "todo",
        }
    ]


@pytest.mark.pattern("ML07")
async def test_a_rolled_back_write_enqueues_nothing(
    sessions: Sessions, author: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sessions() as db:
        service = PostService(db)

        async def commit_fails() -> None:  # the job is queued, then the commit does not happen
            raise OperationalError("COMMIT", {}, Exception("connection lost"))

        monkeypatch.setattr(db, "commit", commit_fails)
        with pytest.raises(OperationalError):
            await service.create(author, PostCreate(title="Rolled back", body="Neither row exists."))
        job_id = service.embedding_job
        assert job_id is not None  # the job row was written, in the transaction...
    # ...which the session's close rolled back: no post, and no job, for anyone.
    assert await posts_titled(sessions, "Rolled back") == 0
    async with sessions() as db:
        found = await (await db.connection()).execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        )
        assert found.scalar_one() == 0


@pytest.mark.pattern("ML07")
async def test_a_write_that_fails_queues_nothing(sessions: Sessions) -> None:
    async with sessions() as db:
        service = PostService(db)
        ghost = User(id=2_000_000_000, email="enqueue-ghost@example.com", hashed_password="x", name="Ghost")
        with pytest.raises(InvalidReferenceError):  # the INSERT fails: no job was even queued
            await service.create(ghost, PostCreate(title="No author", body="x"))
        assert service.embedding_job is None
    assert await posts_titled(sessions, "No author") == 0


# --8<-- [end:atomic]


@pytest.mark.pattern("ML07", "ML11")
async def test_an_edit_of_the_text_queues_a_new_embedding(sessions: Sessions, author: User) -> None:
    async with sessions() as db:
        post = await PostService(db).create(author, PostCreate(title="First", body="Words."))
    async with sessions() as db:
        tags_only = PostService(db)
        await tags_only.update(author, post.id or 0, PostUpdate(tags=["ml"]))
        assert tags_only.embedding_job is None  # the embedded text did not change
    async with sessions() as db:
        edited = PostService(db)
        await edited.update(author, post.id or 0, PostUpdate(body="Other words."))
    jobs = await jobs_for(sessions, post.id)
    assert [job["id"] for job in jobs] == sorted(job["id"] for job in jobs)
    assert len(jobs) == 2
    assert jobs[-1]["id"] == edited.embedding_job


@pytest.mark.pattern("ML07")
async def test_deferring_on_a_session_is_part_of_its_transaction(sessions: Sessions, author: User) -> None:
    """defer_embedding itself, without the service: the session decides, not the queue."""
    async with sessions() as db:
        post = Post(title="Plain", slug="plain", body="x", author_id=author.id or 0)
        db.add(post)
        await db.flush()
        job_id = await defer_embedding(db, post.id or 0)
        assert len(await jobs_for(sessions, post.id)) == 0  # not visible outside before commit
        await db.rollback()
    assert await jobs_for(sessions, post.id) == []
    async with sessions() as db:
        found = await (await db.connection()).execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        )
        assert found.scalar_one() == 0
