"""Who may do what: the rules of the security page's table, in one place.

The caller (`actor`) is always an authenticated, active user: the `CurrentUser` dependency
refuses everyone else before a service runs. Anonymous rights (sign up, log in, read posts) need
no rule here.
"""

from example_app.models import Post, User

# Fields that change what an account may do: a superuser sets them, never on their own account.
STATUS_FIELDS = frozenset({"is_active", "is_superuser"})


def may_see_account(actor: User, user_id: int) -> bool:
    """Read, edit or delete an account: its owner or a superuser. Others get a 404."""
    return actor.is_superuser or actor.id == user_id


def may_list_accounts(actor: User) -> bool:
    return actor.is_superuser


def may_change_fields(actor: User, user_id: int, fields: set[str]) -> bool:
    if fields & STATUS_FIELDS:  # no one activates, deactivates or promotes themself
        return actor.is_superuser and actor.id != user_id
    return may_see_account(actor, user_id)


def may_edit_post(actor: User, post: Post) -> bool:
    """Edit or delete a post: its author or a superuser. Posts are public: others get a 403."""
    return actor.is_superuser or post.author_id == actor.id
