"""Feature ``metrics_extra``: a point's named series are validated, stored per
``(job, step, name)``, merged like the fixed metrics, and returned with the point."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backend.support import Caller, MakeRunningJob, bearer

BATCH = "/api/training/local/metrics"


async def listed(client: httpx.AsyncClient, caller: Caller, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/training/local/{job_id}/metrics", headers=caller.headers())
    points: list[dict[str, Any]] = response.json()["metrics"]
    return points


async def test_series_are_stored_merged_and_returned_with_their_point(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    first = [
        {"step": 1, "epoch": 0.1, "train_loss": 0.7, "extra": {"rewards/margins": 0.0, "kl": 0}},
        {"step": 2, "epoch": 0.2, "train_loss": 0.6, "extra": {"rewards/margins": 0.3}},
        {"step": 3, "epoch": 0.3, "train_loss": 0.5},
    ]
    answer = await client.post(
        BATCH, json={"job_id": job.id, "metrics": first}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    # a re-sent step replaces the values it carries and keeps the others
    again = {"step": 2, "epoch": 0.2, "extra": {"rewards/margins": 0.4, "reward": 1.5}}
    await client.put(f"/api/training/local/{job.id}/metrics", json=again, headers=bearer(token))

    points = await listed(client, caller, job.id)
    assert [p["extra"] for p in points] == [
        {"kl": 0.0, "rewards/margins": 0.0},
        {"reward": 1.5, "rewards/margins": 0.4},
        None,
    ]
    assert points[1]["train_loss"] == 0.6
    after = await client.get(
        f"/api/training/local/{job.id}/metrics", params={"after_step": 1}, headers=caller.headers()
    )
    assert [p["step"] for p in after.json()["metrics"]] == [2, 3]
    assert after.json()["metrics"][0]["extra"]["reward"] == 1.5


@pytest.mark.parametrize(
    "extra",
    [
        {"kl": "0.1"},
        {"kl": True},
        {"": 1.0},
        {"x" * 65: 1.0},
        {f"s{i}": 1.0 for i in range(65)},
        [1.0],
    ],
)
async def test_series_out_of_bounds_are_refused_with_one_sentence(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, extra: Any
) -> None:
    job, token = make_running_job()
    point = {"step": 1, "epoch": 0.1, "extra": extra}
    response = await client.post(
        BATCH, json={"job_id": job.id, "metrics": [point]}, headers=bearer(token)
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid metric: extra must map at most 64 names of 1 to 64 characters to numbers",
        "code": "INVALID_METRIC",
        "index": 0,
    }


async def test_a_series_value_that_is_not_finite_erases_nothing(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    url = f"/api/training/local/{job.id}/metrics"
    await client.put(
        url, json={"step": 1, "epoch": 0.1, "extra": {"kl": 0.5}}, headers=bearer(token)
    )
    raw = b'{"step": 1, "epoch": 0.1, "extra": {"kl": NaN, "reward": 2}}'
    headers = bearer(token) | {"content-type": "application/json"}
    assert (await client.put(url, content=raw, headers=headers)).status_code == 200
    assert (await listed(client, caller, job.id))[0]["extra"] == {"kl": 0.5, "reward": 2.0}
