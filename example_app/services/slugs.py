"""URL slugs for posts.

The rule is ASCII-only so that SQL can apply it too and give the same slug (to fill the column
of rows that already exist, say): PostgreSQL's `lower()` and Python's `str.lower()` disagree on
some non-ASCII letters (and `lower()` depends on the database's locale), so anything outside
`[A-Za-z0-9]` becomes a separator in both.
"""

import re

SLUG_MAX_LENGTH = 255  # posts.slug is varchar(255)
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def slugify(title: str, fallback: str) -> str:
    """'Hello, World!' -> 'hello-world'; `fallback` when nothing of the title is left."""
    slug = _SEPARATORS.sub("-", title).lower().strip("-")
    # Cut to the column's size; the cut may end on a separator, which is trimmed too.
    slug = slug[:SLUG_MAX_LENGTH].rstrip("-")
    return slug or fallback
