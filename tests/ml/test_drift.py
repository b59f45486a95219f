"""Drift (LC05): the prediction log's recent rows against the training profile, by PSI.

The logged rows come through the real route (POST /predictions/batch: the model answers, the log
is written); the report is computed by PostgreSQL and the PSI function. Unshifted rows are the
held-out test split, which the profile never counted; shifted rows are the same images altered.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlmodel.ext.asyncio.session import AsyncSession

from example_app.ml.artifact import DIGITS_MODEL_DIR, LoadedModel, load_model
from example_app.ml.drift import EPSILON, WATCH, psi
from example_app.ml.profile import BIN_THRESHOLDS, ProfileError, bin_counts, load_profile
from example_app.services.drift import MIN_ROWS
from tests.ml.conftest import Register
from tests.support import Caller, path, sql

pytestmark = pytest.mark.pattern("LC05")


@pytest.fixture(scope="module")
def test_split() -> npt.NDArray[np.float32]:
    from example_app.ml.training import load_split

    _, x_test, _, _ = load_split()
    return x_test


# --8<-- [start:shifts]
Images = npt.NDArray[np.floating[Any]]


def inverted(x: Images) -> Images:
    """Light digits on a dark ground: a scanner that reads the other way round."""
    return 16 - x


def faded(x: Images) -> Images:
    """Half the ink: a pale pen, or a lower gain."""
    return x / 2


def shifted_right(x: Images) -> Images:
    """Each image one pixel to the right (wrapped): the same digits, framed differently."""
    return np.roll(x.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64)


# --8<-- [end:shifts]


async def log_rows(client: AsyncClient, x: npt.NDArray[np.float32]) -> None:
    """Predict `x` through the API, which logs one row each (batches of at most 1,000)."""
    for start in range(0, len(x), 1_000):
        rows = [{"pixels": [float(v) for v in row]} for row in x[start : start + 1_000]]
        response = await client.post(path("predict_batch"), json={"rows": rows})
        assert response.status_code == 200, response.text


async def drift(client: AsyncClient, name: str = "digits", **params: Any) -> Any:
    response = await client.get(path("drift_report", model_name=name), params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --8<-- [start:psi_tests]
def test_psi_matches_a_hand_computed_example() -> None:
    # shares 0.5/0.5 against 0.25/0.75: (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    by_hand = 0.25 * math.log(2) + 0.25 * math.log(1.5)  # 0.2747
    assert psi([50, 50], [25, 75]) == pytest.approx(by_hand)
    assert psi([25, 75], [50, 50]) == pytest.approx(by_hand)  # symmetric
    assert psi([3, 7], [30, 70]) == pytest.approx(0.0)  # counts become shares first
    # A bin the reference never filled counts as EPSILON, not 0: large, finite.
    empty_bin = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi([10, 0], [5, 5]) == pytest.approx(empty_bin)
    # One value per row: per feature, for (n_features, n_bins) arrays.
    assert psi([[50, 50], [10, 0]], [[25, 75], [5, 5]]) == pytest.approx([by_hand, empty_bin])


def test_psi_refuses_counts_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="different shapes"):
        psi([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least one row"):
        psi([1, 2], [0, 0])


async def test_the_profile_bins_as_postgresql_width_bucket_does(db_session: AsyncSession) -> None:
    values = [0, 0.5, 1, 3.99, 4, 7.5, 8, 11.99, 12, 16]
    by_sql = (
        await sql(
            db_session,
            "SELECT width_bucket(v, CAST(:t AS float8[])) FROM unnest(CAST(:v AS float8[])) AS v",
            t=list(BIN_THRESHOLDS),
            v=values,
        )
    ).scalars()
    expected = np.zeros((len(values), len(BIN_THRESHOLDS) + 1), np.int64)
    expected[np.arange(len(values)), list(by_sql)] = 1
    # One feature per value, one row: each value's bin is the one PostgreSQL names.
    assert bin_counts(np.asarray([values])).tolist() == expected.tolist()


# --8<-- [end:psi_tests]


# --8<-- [start:report_tests]
async def test_unshifted_inputs_are_not_flagged(
    client: AsyncClient, test_split: npt.NDArray[np.float32]
) -> None:
    await log_rows(client, test_split)

    report = await drift(client, last=1_000)

    assert report["rows"] == len(test_split)
    assert report["status"] == "stable", report["detail"]
    assert report["flagged_features"] == []
    assert max(f["psi"] for f in report["features"]) < WATCH  # not even worth watching
    assert report["labels"]["psi"] < WATCH


@pytest.mark.parametrize("shift", [inverted, faded, shifted_right])
async def test_shifted_inputs_are_flagged(
    client: AsyncClient, test_split: npt.NDArray[np.float32], shift: Any
) -> None:
    await log_rows(client, shift(test_split))

    report = await drift(client)

    assert report["status"] == "drift"
    flagged = [f["feature"] for f in report["features"] if f["flagged"]]
    assert flagged == report["flagged_features"]
    assert report["detail"].startswith(f"{len(flagged)} of 64 features at or past PSI 0.25;")
    assert len(flagged) >= 10  # many pixels, not one unlucky bin
    assert all(f["psi"] >= report["threshold"] for f in report["features"] if f["flagged"])


async def test_inverted_images_move_the_predicted_labels_too(
    client: AsyncClient, test_split: npt.NDArray[np.float32]
) -> None:
    await log_rows(client, inverted(test_split))
    labels = (await drift(client))["labels"]
    assert labels["flagged"]
    assert labels["psi"] >= 0.25
    assert sum(labels["observed"].values()) == pytest.approx(1)


async def test_the_window_is_the_newest_rows(
    client: AsyncClient, test_split: npt.NDArray[np.float32]
) -> None:
    await log_rows(client, inverted(test_split))
    await log_rows(client, test_split)  # newer: the window of the newest 450 rows holds these only

    assert (await drift(client, last=len(test_split)))["status"] == "stable"
    assert (await drift(client, last=2 * len(test_split)))["status"] == "drift"


async def test_the_threshold_is_a_parameter(client: AsyncClient, test_split: npt.NDArray[np.float32]) -> None:
    await log_rows(client, test_split)
    strict = await drift(client, threshold=1e-6)  # every feature that moved at all
    assert (strict["status"], strict["threshold"]) == ("drift", 1e-6)
    assert len(strict["flagged_features"]) > 0


async def test_other_versions_rows_and_a_later_window_are_left_out(
    client: AsyncClient, db_session: AsyncSession, test_split: npt.NDArray[np.float32]
) -> None:
    await log_rows(client, inverted(test_split))
    await sql(db_session, "UPDATE predictions SET model_version = '0.9.0'")  # another version's log

    report = await drift(client)
    assert (report["rows"], report["status"]) == (0, "too_few_rows")

    await sql(db_session, "UPDATE predictions SET model_version = :v", v=load_model().version)
    assert (await drift(client, since="2000-01-01T00:00:00Z"))["status"] == "drift"
    assert (await drift(client, since="2999-01-01T00:00:00+02:00"))["rows"] == 0


async def test_too_few_rows_gets_no_verdict(client: AsyncClient, test_split: npt.NDArray[np.float32]) -> None:
    await log_rows(client, inverted(test_split[: MIN_ROWS - 1]))

    report = await drift(client)

    assert report["status"] == "too_few_rows"
    assert (report["rows"], report["min_rows"]) == (MIN_ROWS - 1, MIN_ROWS)
    assert f"at least {MIN_ROWS}" in report["detail"]
    assert (report["features"], report["labels"]) == ([], None)


# --8<-- [end:report_tests]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"last": MIN_ROWS - 1}, "last"),
        ({"last": 10_001}, "last"),
        ({"last": "many"}, "last"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": "nan"}, "threshold"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no offset: which midnight?
    ],
)
async def test_bad_parameters_are_a_422_that_names_them(
    client: AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await client.get(path("drift_report", model_name="digits"), params=params)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", field]]


async def test_an_unknown_model_is_a_404(client: AsyncClient) -> None:
    response = await client.get(path("drift_report", model_name="nosuchmodel"))
    assert response.status_code == 404
    assert response.json()["detail"] == "model nosuchmodel not found"
    assert (await client.get(path("drift_report", model_name="Not A Name!"))).status_code == 422


async def test_the_report_takes_an_active_users_token(client: AsyncClient, make_caller: Any) -> None:
    del client.headers["Authorization"]
    assert (await client.get(path("drift_report", model_name="digits"))).status_code == 401
    inactive: Caller = await make_caller(active=False)
    response = await client.get(path("drift_report", model_name="digits"), headers=inactive.headers)
    assert response.status_code == 403


# --8<-- [start:profile_tests]
def test_the_committed_profile_is_verified_and_counts_the_training_split() -> None:
    from example_app.ml.training import load_split

    model = load_model()
    profile = load_profile(model)
    x_train, _, _, _ = load_split()
    assert profile is not None
    assert profile.n_rows == len(x_train)
    assert profile.feature_counts == bin_counts(x_train).tolist()
    assert profile.label_counts == np.bincount(model.predict_proba(x_train).labels, minlength=10).tolist()


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    shutil.copytree(DIGITS_MODEL_DIR, folder)
    return folder


def test_a_profile_is_added_to_an_artifact_without_touching_the_model(artifact_copy: Path) -> None:
    from example_app.ml.training import add_profile

    manifest_file, profile_file = artifact_copy / "manifest.json", artifact_copy / "profile.json"
    committed_manifest, committed_profile = manifest_file.read_bytes(), profile_file.read_bytes()
    model_bytes = (artifact_copy / "model.onnx").read_bytes()
    manifest = json.loads(committed_manifest)
    del manifest["profile"]  # an artifact from before profiles
    manifest_file.write_text(json.dumps(manifest))
    profile_file.unlink()
    assert load_profile(load_model(artifact_copy)) is None

    add_profile(artifact_copy)

    assert (artifact_copy / "model.onnx").read_bytes() == model_bytes
    assert profile_file.read_bytes() == committed_profile
    assert manifest_file.read_bytes() == committed_manifest  # the committed one was made so
    assert load_profile(load_model(artifact_copy)) is not None


def test_a_tampered_profile_is_refused(artifact_copy: Path) -> None:
    profile_file = artifact_copy / "profile.json"
    profile_file.write_bytes(
        profile_file.read_bytes().replace(b"[1347, 0, 0, 0, 0]", b"[1346, 1, 0, 0, 0]", 1)
    )
    model: LoadedModel = load_model(artifact_copy)  # the model itself is intact
    with pytest.raises(ProfileError, match="does not match its checksum"):
        load_profile(model)


async def test_a_report_on_a_tampered_profile_is_a_503(
    artifact_copy: Path, make_app: Any, make_client: Any, caller: Caller, register: Register
) -> None:
    # The copy, registered as a version of its own behind an alias of its own, for an app to serve.
    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    (artifact_copy / "manifest.json").write_text(json.dumps({**manifest, "version": "1.0.3"}))
    await register(artifact_copy, "drift-test")
    (artifact_copy / "profile.json").write_bytes(b"{}")
    app: FastAPI = await make_app(MODEL_ALIAS="drift-test", MODEL_ROOTS=[artifact_copy.parent])
    client: AsyncClient = await make_client(app)
    response = await client.get(path("drift_report", model_name="digits"), headers=caller.headers)
    assert response.status_code == 503
    version = load_model(artifact_copy).version
    assert (
        response.json()["detail"] == f"the reference profile of digits {version} does not match its checksum"
    )
    assert str(artifact_copy) not in response.text  # no server paths in an answer


# --8<-- [end:profile_tests]
