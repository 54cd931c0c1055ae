"""Log reports (POST, job token) and reading them back (GET, API key)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backend.support import JSON, Caller, MakeKey, MakeRunningJob, bearer
from training_backend.services.logs import MAX_LINE_CHARS


def logs_url(job_id: str) -> str:
    return f"/api/training/local/{job_id}/logs"


async def send(client: httpx.AsyncClient, job_id: str, token: str, body: Any) -> httpx.Response:
    return await client.post(logs_url(job_id), json=body, headers=bearer(token))


async def read_all(client: httpx.AsyncClient, job_id: str, caller: Caller) -> list[str]:
    response = await client.get(
        logs_url(job_id), params={"limit": 10_000}, headers=caller.headers()
    )
    lines: list[str] = response.json()["logs"]
    return lines


async def test_lines_are_appended_in_order(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, caller: Caller
) -> None:
    job, token = make_running_job()
    first = await send(client, job.id, token, {"logs": ["a", "b"]})
    second = await send(client, job.id, token, {"logs": ["c"]})

    assert first.json() == {"success": True, "logs_appended": 2, "total_logs": 2, "control": None}
    assert second.json() == {"success": True, "logs_appended": 1, "total_logs": 3, "control": None}
    assert await read_all(client, job.id, caller) == ["a", "b", "c"]


async def test_no_lines_is_a_no_op(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await send(client, job.id, token, {"logs": []})
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "No logs to append", "control": None}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Invalid request: logs must be an array"),
        ({"logs": "one line"}, "Invalid request: logs must be an array"),
        ({"logs": ["ok", 3]}, "Invalid request: all log entries must be strings"),
        ({"logs": [None]}, "Invalid request: all log entries must be strings"),
        ({"logs": ["x"], "offset": -1}, "Invalid request: offset must be a non-negative integer"),
        ({"logs": ["x"], "offset": "0"}, "Invalid request: offset must be a non-negative integer"),
        ({"logs": ["x"], "offset": True}, "Invalid request: offset must be a non-negative integer"),
    ],
)
async def test_bad_bodies_are_400(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, body: Any, error: str
) -> None:
    job, token = make_running_job()
    response = await send(client, job.id, token, body)
    assert response.status_code == 400
    assert response.json() == {"error": error, "code": "INVALID_REQUEST"}


async def test_offsets_store_each_line_once_whatever_is_retried(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, caller: Caller
) -> None:
    job, token = make_running_job()
    await send(client, job.id, token, {"logs": ["l0", "l1", "l2"], "offset": 0})
    retried = await send(client, job.id, token, {"logs": ["l0", "l1", "l2"], "offset": 0})
    overlap = await send(client, job.id, token, {"logs": ["l2", "l3"], "offset": 2})

    assert retried.json() == {"success": True, "logs_appended": 0, "total_logs": 3, "control": None}
    assert overlap.json() == {"success": True, "logs_appended": 1, "total_logs": 4, "control": None}
    assert await read_all(client, job.id, caller) == ["l0", "l1", "l2", "l3"]


async def test_an_offset_past_the_end_is_409_log_gap(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, caller: Caller
) -> None:
    job, token = make_running_job()
    await send(client, job.id, token, {"logs": ["l0", "l1"], "offset": 0})
    response = await send(client, job.id, token, {"logs": ["l5"], "offset": 5})

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "LOG_GAP"
    assert body["expected_offset"] == 2
    assert "5" in body["error"] and "2" in body["error"]
    assert await read_all(client, job.id, caller) == ["l0", "l1"]


async def test_too_many_lines_is_413(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await send(client, job.id, token, {"logs": ["x"] * 5001})
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_too_much_text_is_413(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await send(client, job.id, token, {"logs": ["y" * 300_000] * 4})
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_body_over_the_request_cap_is_413_before_parsing(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    body = b'{"logs": ["' + b"z" * (9 * 1024 * 1024) + b'"]}'
    headers = bearer(token) | JSON
    response = await client.post(logs_url(job.id), content=body, headers=headers)
    assert response.status_code == 413


async def test_absurd_lines_are_truncated_with_a_marker_and_nul_is_replaced(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, caller: Caller
) -> None:
    job, token = make_running_job()
    long_line = "w" * (MAX_LINE_CHARS + 10)
    await send(client, job.id, token, {"logs": [long_line, "nul\x00here"]})
    stored, nul = await read_all(client, job.id, caller)
    assert stored.startswith("w" * MAX_LINE_CHARS)
    assert stored.endswith("[truncated 10 characters]")
    assert nul == "nul\ufffdhere"


async def test_reading_pages_through_the_stream(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, caller: Caller
) -> None:
    job, token = make_running_job()
    await send(client, job.id, token, {"logs": [f"line {i}" for i in range(250)]})

    default = (await client.get(logs_url(job.id), headers=caller.headers())).json()
    page = await client.get(
        logs_url(job.id), params={"offset": 240, "limit": 20}, headers=caller.headers()
    )

    assert default["logs"] == [f"line {i}" for i in range(100)]
    assert (default["total_lines"], default["offset"], default["limit"]) == (250, 0, 100)
    assert page.json() == {
        "logs": [f"line {i}" for i in range(240, 250)],
        "total_lines": 250,
        "offset": 240,
        "limit": 20,
    }


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"limit": "x"}]
)
async def test_bad_paging_is_400(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    caller: Caller,
    params: dict[str, Any],
) -> None:
    job, _ = make_running_job()
    response = await client.get(logs_url(job.id), params=params, headers=caller.headers())
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_REQUEST"
    assert next(iter(params)) in body["error"]


async def test_other_users_cannot_read_logs(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, make_key: MakeKey
) -> None:
    job, _ = make_running_job()
    response = await client.get(logs_url(job.id), headers=make_key().headers())
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found", "code": "JOB_NOT_FOUND"}
