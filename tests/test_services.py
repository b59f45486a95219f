"""The service layer on its own (UserService, PostService), on a rolled-back session (no HTTP)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.core.security import Passwords
from example_app.models import User
from example_app.schemas.post import PostCreate, PostUpdate
from example_app.schemas.user import UserCreate, UserUpdate
from example_app.services.errors import ConflictError, InvalidReferenceError, NotFoundError
from example_app.services.post import PostService
from example_app.services.user import UserService
from tests.support import sql


def user_in(email: str = "svc@example.com") -> UserCreate:
    return UserCreate(email=email, password="long enough", name="Service")


# --8<-- [start:test_service]
@pytest.mark.pattern("SV01", "W05")
async def test_create_and_find_by_email(db_session: AsyncSession, passwords: Passwords) -> None:
    service = UserService(db_session, passwords)
    created = await service.create(user_in("Svc@Example.com"))
    assert created.id is not None
    found = await service.get_by_email("SVC@example.com")
    assert found is not None
    assert found.id == created.id
    assert await service.get_by_email("nobody@example.com") is None


# --8<-- [end:test_service]


@pytest.mark.pattern("SV01", "W05")
async def test_get_unknown_raises_not_found(db_session: AsyncSession, passwords: Passwords) -> None:
    with pytest.raises(NotFoundError, match="User 5 not found"):
        await UserService(db_session, passwords).get(5)


@pytest.mark.pattern("SV03", "E05")
async def test_a_failed_create_leaves_nothing_behind(db_session: AsyncSession, passwords: Passwords) -> None:
    service = UserService(db_session, passwords)
    await service.create(user_in())
    with pytest.raises(ConflictError):
        await service.create(user_in())
    count = await sql(db_session, "SELECT count(*) FROM users")
    assert count.scalar_one() == 1
    # The session is usable again: the failed transaction was rolled back, not left aborted.
    await service.create(user_in("other@example.com"))


@pytest.mark.pattern("SV03", "E05")
async def test_race_past_the_pre_check_is_still_a_conflict(
    db_session: AsyncSession, passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate the race: the pre-check sees no user, but the unique index does."""
    service = UserService(db_session, passwords)
    await service.create(user_in())

    async def nobody(email: str) -> None:
        return None

    monkeypatch.setattr(service, "get_by_email", nobody)
    with pytest.raises(ConflictError, match="already exists"):
        await service.create(user_in())


@pytest.mark.pattern("SV03", "E31")
async def test_update_commits_only_the_given_fields(db_session: AsyncSession, passwords: Passwords) -> None:
    service = UserService(db_session, passwords)
    user = await service.create(user_in())
    before = user.updated_at
    admin = await service.create(user_in("admin@example.com"), is_superuser=True)
    updated = await service.update(admin, user.id or 0, UserUpdate(is_active=False))
    assert (updated.is_active, updated.name) == (False, "Service")
    assert updated.updated_at > before
    row = await sql(db_session, "SELECT is_active FROM users WHERE id = :id", id=user.id)
    assert row.scalar_one() is False


@pytest.mark.pattern("SV02")
async def test_routes_get_the_service_from_its_provider(db_session: AsyncSession, app: FastAPI) -> None:
    """Overriding the provider swaps the service for every route that uses it."""
    from example_app.api.dependencies import get_user_service
    from tests.support import http_client, path

    class ReadOnlyUsers(UserService):
        async def create(self, data: UserCreate, *, is_superuser: bool = False) -> User:
            raise ConflictError("read-only today")

    app.dependency_overrides[get_user_service] = lambda: ReadOnlyUsers(
        db_session, app.state.resources.passwords
    )
    try:
        async with http_client(app) as c:
            response = await c.post(path("create_user"), json=user_in().model_dump())
    finally:
        app.dependency_overrides.clear()
    assert response.status_code == 409
    assert response.json()["detail"] == "read-only today"


# --- PostService ----------------------------------------------------------------------------------


async def an_author(db_session: AsyncSession) -> User:
    author = User(email="author@example.com", name="Author", hashed_password="not a hash: never logs in")
    db_session.add(author)
    await db_session.commit()
    return author


@pytest.mark.pattern("W05")
async def test_create_post_gives_it_a_slug_and_loads_its_author_on_request(db_session: AsyncSession) -> None:
    author = await an_author(db_session)
    service = PostService(db_session)
    created = await service.create(author, PostCreate(title="Hello, World!", body="b"))
    assert (created.slug, created.author_id) == ("hello-world", author.id)
    post = await service.get_with_author(created.id or 0)
    assert (post.author.id, post.author.name) == (author.id, author.name)  # joined in the same read
    with pytest.raises(NotFoundError, match="Post 0 not found"):
        await service.get_with_author(0)


@pytest.mark.pattern("SV03", "MG05")
async def test_an_unknown_author_is_an_invalid_reference_and_nothing_is_written(
    db_session: AsyncSession,
) -> None:
    """The foreign key refuses it, and the service recognises the constraint by its name."""
    service = PostService(db_session)
    gone = User(id=424242, email="gone@example.com", hashed_password="x", name="Gone")  # never saved
    with pytest.raises(InvalidReferenceError, match="author_id 424242 is not an existing user"):
        await service.create(gone, PostCreate(title="t", body="b"))
    assert (await sql(db_session, "SELECT count(*) FROM posts")).scalar_one() == 0
    # The session is usable again: the failed transaction was rolled back, not left aborted.
    author = await an_author(db_session)
    await service.create(author, PostCreate(title="t", body="b"))


@pytest.mark.pattern("W05", "SV03")
async def test_update_renames_the_slug_only_with_the_title_and_delete_removes_the_post(
    db_session: AsyncSession,
) -> None:
    author = await an_author(db_session)
    service = PostService(db_session)
    post = await service.create(author, PostCreate(title="First title", body="b"))
    post_id = post.id or 0
    assert (await service.update(author, post_id, PostUpdate(body="new body"))).slug == "first-title"
    assert (await service.update(author, post_id, PostUpdate(title="Second title"))).slug == "second-title"
    row = await sql(db_session, "SELECT slug, body FROM posts WHERE id = :id", id=post_id)
    assert tuple(row.one()) == ("second-title", "new body")

    await service.delete(author, post_id)
    with pytest.raises(NotFoundError, match=f"Post {post_id} not found"):
        await service.get(post_id)
    with pytest.raises(NotFoundError, match=f"Post {post_id} not found"):
        await service.delete(author, post_id)
