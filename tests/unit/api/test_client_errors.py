"""BackendClient against a fake server (httpx.MockTransport): errors, and secrets kept out."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr

from tests.support.fake_server import (
    API_KEY,
    BASE_URL,
    IDENTITY,
    JOB,
    JOB_TOKEN,
    FakeServer,
)
from training_agent.api import BackendClient
from training_agent.api.responses import parse_retry_after
from training_agent.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    HttpStatusError,
    ProtocolError,
    TransportError,
)
from training_agent.jobs import JobStatus

# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (401, {"error": "Invalid API key"}, None),
        (403, {"error": "Agent revoked on the page", "code": "AGENT_REVOKED"}, "AGENT_REVOKED"),
    ],
)
async def test_rejected_key_on_poll_is_an_auth_error(
    wire_client: BackendClient,
    server: FakeServer,
    status: int,
    body: dict[str, str],
    code: str | None,
) -> None:
    server.reply(status, json=body)
    with pytest.raises(AuthError) as caught:
        await wire_client.poll()
    assert str(caught.value) == f"the backend rejected the API key: {body['error']}"
    assert (caught.value.status, caught.value.code) == (status, code)


async def test_scope_error_on_claim_is_an_auth_error(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(403, json={"error": "API key does not have 'training' scope. Key scopes: x"})
    with pytest.raises(AuthError, match=r"^the backend rejected the API key: API key does not"):
        await wire_client.claim("job-1")


async def test_claim_of_another_users_job_is_not_an_auth_error(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(403, json={"error": "Job belongs to another user", "code": "ACCESS_DENIED"})
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.claim("job-1")
    assert not isinstance(caught.value, AuthError)
    assert (caught.value.status, caught.value.code) == (403, "ACCESS_DENIED")


async def test_rejected_job_token_is_not_an_auth_error(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(401, json={"error": "Unauthorized: Invalid token"})
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.put_metric("job-1", JOB_TOKEN, {"step": 1, "epoch": 0})
    assert not isinstance(caught.value, AuthError)
    assert caught.value.status == 401
    assert "Unauthorized: Invalid token" in str(caught.value)


async def test_conflict_carries_its_code(wire_client: BackendClient, server: FakeServer) -> None:
    server.reply(
        409, json={"error": "Job already claimed by another agent", "code": "ALREADY_CLAIMED"}
    )
    with pytest.raises(ConflictError) as caught:
        await wire_client.claim("job-1")
    assert (caught.value.status, caught.value.code) == (409, "ALREADY_CLAIMED")
    assert str(caught.value) == (
        "the backend answered 409 to POST /api/training/agent/claim/job-1: "
        "Job already claimed by another agent"
    )


async def test_log_gap_body_is_kept_for_the_caller(
    wire_client: BackendClient, server: FakeServer
) -> None:
    body = {"error": "gap", "code": "LOG_GAP", "expected_offset": 12}
    server.reply(409, json=body)
    with pytest.raises(ConflictError) as caught:
        await wire_client.post_logs("job-1", JOB_TOKEN, ["x"], offset=20)
    assert caught.value.body == body


async def test_server_error_is_a_plain_status_error(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(500, json={"error": "Failed to claim job", "code": "CLAIM_FAILED"})
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.claim("job-1")
    assert type(caught.value) is HttpStatusError
    assert (caught.value.status, caught.value.code, caught.value.retry_after_s) == (
        500,
        "CLAIM_FAILED",
        None,
    )


async def test_rate_limit_with_retry_after_seconds(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(
        429, json={"error": "Rate limit exceeded. Try again later."}, headers={"Retry-After": "7"}
    )
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.poll()
    assert (caught.value.status, caught.value.retry_after_s) == (429, 7.0)


async def test_rate_limit_with_retry_after_http_date(
    wire_client: BackendClient, server: FakeServer
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.reply(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.post_logs("job-1", JOB_TOKEN, ["x"])
    assert caught.value.retry_after_s is not None
    assert 100 <= caught.value.retry_after_s <= 120


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


async def test_non_json_error_body_gives_the_status_line(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(502, text="<html><body>upstream down</body></html>")
    with pytest.raises(HttpStatusError) as caught:
        await wire_client.poll()
    assert str(caught.value) == (
        "the backend answered 502 to GET /api/training/agent/poll: 502 Bad Gateway"
    )
    assert caught.value.code is None


@pytest.mark.parametrize(
    "body",
    [{"detail": "Not Found"}, {"error": {"message": "Not Found", "code": "NOPE"}}, ["Not Found"]],
)
async def test_other_error_body_shapes_are_tolerated(
    wire_client: BackendClient, server: FakeServer, body: object
) -> None:
    server.reply(404, json=body)
    with pytest.raises(HttpStatusError, match=r"404 .*: (404 )?Not Found$") as caught:
        await wire_client.get_job_state("job-1")
    assert caught.value.status == 404


async def test_redirect_is_not_followed_and_says_where(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(308, headers={"Location": "https://backend.test/api/training/agent/poll"})
    with pytest.raises(HttpStatusError, match=r"redirected to https://backend\.test") as caught:
        await wire_client.poll()
    assert caught.value.status == 308
    assert len(server.requests) == 1


async def test_success_that_is_not_json_is_a_protocol_error(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(200, text="<html>login</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(ProtocolError, match=r"GET /api/training/agent/poll .*not JSON \(text/html"):
        await wire_client.poll()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"success": True, "job": JOB}, "'job_token' is missing"),
        ({"job_token": JOB_TOKEN, "job": {"model_name": "x"}}, "'job.id' is missing"),
        ({"job_token": "has space"}, "'job_token' is invalid"),
        ([1, 2], "the body is not a JSON object"),
    ],
)
async def test_success_of_the_wrong_shape_is_a_protocol_error(
    wire_client: BackendClient, server: FakeServer, body: object, problem: str
) -> None:
    server.reply(200, json=body)
    with pytest.raises(ProtocolError) as caught:
        await wire_client.claim("job-1")
    message = str(caught.value)
    assert message.startswith("the backend's answer to POST /api/training/agent/claim/job-1")
    assert message.endswith(problem) or problem + " (" in message
    assert "pydantic" not in message
    assert "has space" not in message


async def test_connect_error_names_the_host_and_reason(
    wire_client: BackendClient, server: FakeServer
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError as exc:
            raise httpx.ConnectError("All connection attempts failed", request=request) from exc

    server.answer = refuse
    with pytest.raises(TransportError) as caught:
        await wire_client.poll()
    assert str(caught.value) == "cannot reach http://backend.test: connection refused"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_real_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with BackendClient(base_url=url, api_key=API_KEY, identity=IDENTITY) as backend:
        with pytest.raises(TransportError) as caught:
            await backend.poll()
    assert str(caught.value) == f"cannot reach {url}: connection refused"


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx.ReadTimeout, "http://backend.test did not answer within 30s"),
        (httpx.ConnectTimeout, "cannot reach http://backend.test: no connection within 10s"),
        (httpx.RemoteProtocolError, "lost the connection to http://backend.test: server hung up"),
    ],
)
async def test_timeouts_and_dropped_connections_are_transport_errors(
    wire_client: BackendClient,
    server: FakeServer,
    failure: type[httpx.TransportError],
    message: str,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure("server hung up", request=request)

    server.answer = fail
    with pytest.raises(TransportError) as caught:
        await wire_client.post_logs("job-1", JOB_TOKEN, ["x"])
    assert str(caught.value) == message


async def test_long_poll_timeout_names_the_extended_read_timeout(
    wire_client: BackendClient, server: FakeServer
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    server.answer = fail
    with pytest.raises(TransportError, match="did not answer within 40s"):
        await wire_client.poll(wait_s=30)


# --- secrets --------------------------------------------------------------------------------


async def test_secrets_never_appear_in_errors_or_repr(server: FakeServer) -> None:
    """Every error path, with a server that echoes the credentials it got back."""
    server.answer = lambda request: httpx.Response(
        401, json={"error": f"bad credentials {request.headers['Authorization']}", "code": "X"}
    )
    transport = httpx.MockTransport(server)
    backend = BackendClient(
        base_url=BASE_URL, api_key=SecretStr(API_KEY), identity=IDENTITY, transport=transport
    )
    texts = [repr(backend), str(backend)]
    calls = [
        backend.poll(),
        backend.claim("j"),
        backend.get_job_state("j"),
        backend.post_logs("j", JOB_TOKEN, ["x"]),
        backend.update_status("j", JOB_TOKEN, JobStatus.FAILED, error="e"),
    ]
    for call in calls:
        with pytest.raises(HttpStatusError) as caught:
            await call
        texts += [str(caught.value), repr(caught.value)]
    server.reply(200, json={"job_token": "not a token"})
    with pytest.raises(ProtocolError) as bad_token:
        await backend.claim("j")
    texts += [str(bad_token.value), repr(bad_token.value.__cause__)]
    await backend.aclose()
    assert "[redacted]" in texts[2]
    for text in texts:
        assert API_KEY not in text
        assert JOB_TOKEN not in text
        assert "not a token" not in text


def test_a_pasted_key_is_stripped_and_a_broken_key_refused() -> None:
    BackendClient(base_url=BASE_URL, api_key=f"  {API_KEY}\n", identity=IDENTITY)
    with pytest.raises(ConfigError) as caught:
        BackendClient(base_url=BASE_URL, api_key="wak_abc def", identity=IDENTITY)
    assert "wak_abc" not in str(caught.value)
    with pytest.raises(ConfigError, match="no API key"):
        BackendClient(base_url=BASE_URL, api_key=SecretStr(" "), identity=IDENTITY)


@pytest.mark.parametrize("url", ["backend.test", "ftp://backend.test", "http://"])
def test_a_base_url_without_http_scheme_and_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        BackendClient(base_url=url, api_key=API_KEY, identity=IDENTITY)
