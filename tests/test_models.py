"""The table models as PostgreSQL sees them (information_schema, constraints, real inserts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError, StatementError
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.models import Post, User
from example_app.models.base import POSTS_AUTHOR_FK, USERS_EMAIL_UNIQUE
from tests.support import sql


def user_id(user: User) -> int:
    assert user.id is not None
    return user.id


async def columns(session: AsyncSession, table: str) -> dict[str, tuple[Any, ...]]:
    rows = await sql(
        session,
        "SELECT column_name, data_type, character_maximum_length, is_nullable "
        "FROM information_schema.columns WHERE table_name = :t",
        t=table,
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def new_user(**fields: Any) -> User:
    values: dict[str, Any] = {"email": "m@example.com", "hashed_password": "x", "name": "M"}
    return User(**(values | fields))


@pytest.mark.pattern("M01", "M03", "M04", "M05", "E14")
async def test_users_table_columns(db_session: AsyncSession) -> None:
    cols = await columns(db_session, "users")
    assert cols == {
        "id": ("integer", None, "NO"),
        "email": ("character varying", 255, "NO"),
        "hashed_password": ("character varying", 255, "NO"),
        "name": ("character varying", 100, "NO"),
        "is_active": ("boolean", None, "NO"),
        "is_superuser": ("boolean", None, "NO"),
        "created_at": ("timestamp with time zone", None, "NO"),
        "updated_at": ("timestamp with time zone", None, "NO"),
    }


# --8<-- [start:test_reserved_word]
@pytest.mark.pattern("E14")
async def test_user_is_a_reserved_word_in_postgres(db_session: AsyncSession) -> None:
    """Why the table is `users`: without __tablename__ SQLModel would name it `user`."""
    with pytest.raises(DBAPIError, match="syntax error"):
        async with db_session.begin_nested():
            await sql(db_session, "CREATE TABLE user (id int)")


# --8<-- [end:test_reserved_word]


@pytest.mark.pattern("M03")
async def test_email_has_a_unique_index(db_session: AsyncSession) -> None:
    indexdef = (
        await sql(db_session, "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_users_email'")
    ).scalar_one()
    assert indexdef == "CREATE UNIQUE INDEX ix_users_email ON public.users USING btree (email)"
    db_session.add(new_user())
    await db_session.flush()
    with pytest.raises(IntegrityError, match=USERS_EMAIL_UNIQUE):
        async with db_session.begin_nested():
            db_session.add(new_user(name="Twin"))
            await db_session.flush()


@pytest.mark.pattern("E06")
async def test_the_database_refuses_a_non_normalised_email(db_session: AsyncSession) -> None:
    with pytest.raises(IntegrityError, match="ck_users_email_lowercase"):
        async with db_session.begin_nested():
            db_session.add(new_user(email="Upper@Example.com"))
            await db_session.flush()


# --8<-- [start:test_pk_default]
@pytest.mark.pattern("M02", "M04", "TS05")
async def test_id_is_assigned_by_the_database_and_defaults_apply(db_session: AsyncSession) -> None:
    user = new_user()
    assert user.id is None  # `int | None = Field(default=None, primary_key=True)`
    db_session.add(user)
    await db_session.commit()
    assert isinstance(user.id, int)
    assert user.is_active is True


# --8<-- [end:test_pk_default]


@pytest.mark.pattern("M05", "E01")
async def test_timestamps_are_aware_utc(db_session: AsyncSession) -> None:
    user = new_user()
    db_session.add(user)
    await db_session.commit()
    stored = (await sql(db_session, "SELECT created_at FROM users WHERE id = :id", id=user.id)).scalar_one()
    assert stored.tzinfo is not None
    assert stored.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stored).total_seconds()) < 60


# --8<-- [start:test_naive_utcnow]
@pytest.mark.pattern("E01")
async def test_naive_utcnow_is_not_what_the_database_stores(db_session: AsyncSession) -> None:
    """The original's `datetime.utcnow`: naive, deprecated, and refused by the timestamptz type."""
    naive = datetime.now(UTC).replace(tzinfo=None)  # what datetime.utcnow() returns
    with pytest.raises(StatementError, match="Datetime values must have timezone information"):
        async with db_session.begin_nested():
            db_session.add(new_user(created_at=naive))
            await db_session.flush()


# --8<-- [end:test_naive_utcnow]


@pytest.mark.pattern("M06", "E02")
async def test_relationship_loads_explicitly_and_lazy_loads_fail_loudly(db_session: AsyncSession) -> None:
    from sqlalchemy.orm import selectinload

    user = new_user()
    db_session.add(user)
    await db_session.flush()
    db_session.add(Post(title="T", slug="t", body="B", author_id=user_id(user)))
    await db_session.commit()
    db_session.expunge_all()

    loaded = (await db_session.exec(select(User).options(selectinload(User.posts)))).one()  # type: ignore[arg-type]
    assert [p.title for p in loaded.posts] == ["T"]

    db_session.expunge_all()
    plain = (await db_session.exec(select(User))).one()
    lazy_load_refused = re.escape("'User.posts' is not available due to lazy='raise'")
    with pytest.raises(InvalidRequestError, match=lazy_load_refused):
        _ = plain.posts


@pytest.mark.pattern("D02")
async def test_tags_are_jsonb_and_queryable(db_session: AsyncSession) -> None:
    assert (await columns(db_session, "posts"))["tags"][0] == "jsonb"
    user = new_user()
    db_session.add(user)
    await db_session.flush()
    db_session.add_all(
        [
            Post(title="a", slug="a", body="b", author_id=user_id(user), tags=["ml", "db"]),
            Post(title="b", slug="b", body="b", author_id=user_id(user), tags=["web"]),
        ]
    )
    await db_session.flush()
    found = await db_session.exec(select(Post.title).where(Post.tags.contains(["ml"])))  # type: ignore[attr-defined]
    assert found.all() == ["a"]


@pytest.mark.pattern("MG05", "E25")
async def test_foreign_key_is_enforced(db_session: AsyncSession) -> None:
    with pytest.raises(IntegrityError, match=POSTS_AUTHOR_FK):
        async with db_session.begin_nested():
            db_session.add(Post(title="orphan", slug="orphan", body="b", author_id=123456))
            await db_session.flush()


# --8<-- [start:test_table_models_do_not_validate]
@pytest.mark.pattern("E08", "E25")
async def test_table_models_do_not_validate_but_postgres_does(db_session: AsyncSession) -> None:
    """max_length on a table model is DDL only: validation belongs on the input schemas."""
    too_long = new_user(name="n" * 101)  # no error here: table models skip validation
    with pytest.raises(DBAPIError, match="value too long for type character varying\\(100\\)"):
        async with db_session.begin_nested():
            db_session.add(too_long)
            await db_session.flush()


# --8<-- [end:test_table_models_do_not_validate]


# --8<-- [start:test_negative_limit]
@pytest.mark.pattern("E25", "E15")
async def test_negative_limit_is_an_error_on_postgres(db_session: AsyncSession) -> None:
    with pytest.raises(DBAPIError, match="LIMIT must not be negative"):
        async with db_session.begin_nested():
            await db_session.exec(select(User).limit(-1))


# --8<-- [end:test_negative_limit]


@pytest.mark.pattern("D01")
def test_metadata_holds_only_sqlmodel_tables() -> None:
    tables = SQLModel.metadata.tables
    assert set(tables) == {"users", "posts", "predictions", "model_versions", "model_aliases"}
    mapped = {cls.__table__.name for cls in SQLModel.__subclasses__() if hasattr(cls, "__table__")}
    assert mapped == set(tables)
