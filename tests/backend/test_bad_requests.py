"""No bad request gets a 500: malformed bodies, wrong types and unknown routes answer 4xx."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.support import JSON, Caller, MakeRunningJob, bearer

MALFORMED = [b"{not json", b"", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b'{"a": 1}}']


@pytest.mark.parametrize("body", MALFORMED)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/training/local/{job}/status"),
        ("PUT", "/api/training/local/{job}/metrics"),
        ("POST", "/api/training/local/metrics"),
        ("POST", "/api/training/local/{job}/logs"),
    ],
)
async def test_malformed_report_bodies_are_400(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    method: str,
    path: str,
    body: bytes,
) -> None:
    job, token = make_running_job()
    headers = bearer(token) | JSON
    response = await client.request(method, path.format(job=job.id), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] in ("INVALID_JSON", "INVALID_REQUEST")


@pytest.mark.parametrize("body", MALFORMED)
async def test_malformed_job_submissions_are_400(
    client: httpx.AsyncClient, caller: Caller, body: bytes
) -> None:
    response = await client.post(
        "/api/training/jobs", content=body, headers=caller.headers() | JSON
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error", "code"}


async def test_invalid_json_names_the_problem(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await client.patch(
        f"/api/training/local/{job.id}/status", content=b"{", headers=bearer(token) | JSON
    )
    assert response.json() == {"error": "Request body is not valid JSON", "code": "INVALID_JSON"}


@pytest.mark.parametrize("number", [b"1e999999", b"NaN", b"-Infinity"])
async def test_non_finite_numbers_are_read_as_null(
    client: httpx.AsyncClient, caller: Caller, number: bytes
) -> None:
    body = b'{"config": {"n": ' + number + b"}}"
    response = await client.post(
        "/api/training/jobs", content=body, headers=caller.headers() | JSON
    )
    assert response.status_code == 201
    assert response.json()["job"]["config"] == {"n": None}


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/nothing-here")
    wrong_method = await client.delete("/healthz")
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
