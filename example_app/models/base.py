"""What every table model imports first: the naming convention and the constraint names it gives.

Importing this module sets the convention on `SQLModel.metadata` before any table is defined, so
every constraint and index gets a deterministic name that migrations and services can refer to
(PostgreSQL would invent one otherwise). A model file that imports it stands on its own.
"""

from sqlmodel import SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Names the convention gives to constraints that services recognise in an IntegrityError.
# A test checks each against the migrated database.
__all__ = ["POSTS_AUTHOR_FK", "USERS_EMAIL_UNIQUE", "SQLModel"]

USERS_EMAIL_UNIQUE = "ix_users_email"
POSTS_AUTHOR_FK = "fk_posts_author_id_users"
