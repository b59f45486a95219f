"""The shadow report (LC03) of a served app with every prediction shadowed by a candidate.
Explained on docs/ml/shadow-canary.md.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench import harness as h

CANDIDATE_VERSION = "2.0.0"


async def register_candidate(database_url: str, folder: Path) -> None:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from example_app.core.config import load_settings
    from example_app.core.database import create_engine
    from example_app.services.model_version import register_version, set_alias
    from tests.ml.artifacts import coarse_digits_model  # the shadow tests' candidate

    manifest = coarse_digits_model(folder, CANDIDATE_VERSION)
    engine = create_engine(load_settings(DATABASE_URL=database_url))
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            await register_version(db, manifest, folder)
            await set_alias(db, manifest.name, "candidate", manifest.version)
    finally:
        await engine.dispose()


def run(timeout: float = 120, limit: int | None = None) -> dict[str, Any]:
    """`limit`: the first rows of the held-out split only (a quick run)."""
    from example_app.core.config import APP_DIR
    from example_app.ml.training import load_split

    _, x_test, _, _ = load_split()
    rows = [[float(v) for v in row] for row in x_test[:limit]]
    with h.database() as db, tempfile.TemporaryDirectory() as tmp:
        h.seed_posts(db, 1, 0)
        [token] = h.bearer(db, [1])
        asyncio.run(register_candidate(db.url, Path(tmp) / f"digits-{CANDIDATE_VERSION}"))
        roots = json.dumps([str(APP_DIR / "ml" / "artifacts"), tmp])
        env = db.env(MODEL_SHADOW_PERCENT="100", MODEL_ROOTS=roots)
        with (
            h.Server(env) as server,
            httpx.Client(base_url=server.base, headers={"Authorization": token}) as client,
        ):
            for row in rows:
                answer = client.post(f"{h.PREFIX}/predictions", json={"pixels": row}, timeout=30)
                if answer.status_code != 200:
                    raise SystemExit(
                        f"bench: a prediction answered {answer.status_code}: {answer.text[:300]}"
                    )
            report: dict[str, Any] = {}

            def all_shadowed() -> bool:  # the shadows are logged after the answers
                params = {"last": len(rows)}
                report.update(client.get(f"{h.PREFIX}/models/digits/shadow-report", params=params).json())
                return report.get("rows") == len(rows)

            h.wait_until(all_shadowed, timeout, f"{len(rows)} predictions shadowed", every=0.5)
    return {"postgres": db.postgres, "requests": len(rows), "report": report}


def table(data: dict[str, Any]) -> str:
    spec = ["production", "candidate", "rows", "agreeing", "agreement:{:.1%}"]
    rows = [
        (p["production_version"], p["candidate_version"], p["rows"], p["agreeing"], p["agreement"],
         "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**p["production_latency"]),
         "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**p["candidate_latency"]))
        for p in data["report"]["pairs"]
    ]  # fmt: skip
    return "\n".join([
        f"Shadow report of the served app: {data['requests']} single predictions (the held-out split), "
        "every one shadowed (MODEL_SHADOW_PERCENT=100)",
        f"GET /api/v1/models/digits/shadow-report?last={data['requests']}",
        "",
        *h.columns([*spec, "production p50/p95", "candidate p50/p95"], rows),
        "",
        json.dumps(data["report"], indent=2),
    ])  # fmt: skip


main = h.scenario("shadow", run, table)
