"""The scale-out benchmark's write load edits each client's own post: checked on the seeded data."""

from __future__ import annotations

import psycopg
import pytest

from bench.hot_path import seed
from bench.scale_out import CLIENTS, owned_posts
from example_app.jobs.queue import conninfo


@pytest.mark.system("wrk load through served apps")
def test_each_client_of_the_write_load_owns_the_post_it_edits(scratch_url: str) -> None:
    seed(scratch_url)  # migrates and fills the scratch database as the benchmark does
    pairs = owned_posts()
    with psycopg.connect(conninfo(scratch_url)) as conn:
        rows = conn.execute("SELECT id, author_id FROM posts WHERE id = ANY(%s)", ([p for _, p in pairs],))
        authors: dict[int, int] = dict(rows.fetchall())
    assert len(pairs) == CLIENTS
    assert [(authors[post], post) for _, post in pairs] == pairs
