"""Canary traffic (LC04): a share of callers answered by the `candidate` version, each caller
always by the same one.

Sticky by hashing, not by state: a caller's bucket is a hash of its user id and the candidate's
checksum, so every request of that caller, in every worker process, lands on the same side with
nothing stored or shared; a new candidate draws a new cohort, so the same callers are not always
the ones who try new versions first.
"""

from __future__ import annotations

import hashlib

from example_app.ml.artifact import LoadedModel

BUCKETS = 10_000  # a share is set to 0.01 %


# --8<-- [start:canary]
def in_canary(user_id: int, candidate: LoadedModel, percent: float) -> bool:
    """Whether this caller is answered by `candidate` when `percent` % of callers are."""
    digest = hashlib.sha256(f"{candidate.sha256}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS < round(percent * BUCKETS / 100)


# --8<-- [end:canary]
