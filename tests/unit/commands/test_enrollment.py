"""The installer's enrollment step and its one API call, against a fake backend
(``httpx.MockTransport``): what is sent, what is asked, and each refusal's sentence."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from training_agent.api.enroll import enroll_agent
from training_agent.commands.enrollment import (
    ENROLL_FILE_NAME,
    Enroller,
    EnrollmentFile,
    read_enrollment_file,
)
from training_agent.commands.install import check_backend_url
from training_agent.errors import (
    ConfigError,
    CredentialError,
    HttpStatusError,
    ProtocolError,
    TransportError,
)
from training_agent.identity import AgentIdentity

TOKEN = "wae_0123456789abcdefghijKLMNOPQRSTuv"
KEY = "wak_0123456789abcdefghijKLMNOPQRSTuv"
AGENT = "agent_0123456789abcdef"
IDENTITY = AgentIdentity(agent_id=AGENT, hostname="gpu-box", platform="linux", version="1.2.3")
GOOD = {"success": True, "api_key": KEY, "name": "gpu-box", "backend_url": "x"}


class FakeBackend:
    """Answers the enroll call with ``answer`` (or raises), recording each request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda _request: httpx.Response(201, json=GOOD))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def refusing(status: int, code: str, error: str) -> FakeBackend:
    return FakeBackend(lambda _r: httpx.Response(status, json={"error": error, "code": code}))


def enroller(
    tmp_path: Path,
    backend: FakeBackend,
    *,
    url: str = "https://app.example.com",
    token: str = TOKEN,
    answers: list[str] | None = None,
    said: list[str] | None = None,
) -> Enroller:
    path = tmp_path / ENROLL_FILE_NAME
    path.write_text(json.dumps({"backend_url": url, "enrollment_token": token}))
    file = read_enrollment_file(tmp_path)
    assert file is not None
    queue = answers
    return Enroller(
        file,
        say=(said if said is not None else []).append,
        ask=None if queue is None else lambda _question: queue.pop(0),
        check_url=check_backend_url,
        transport=backend.transport,
    )


async def test_the_call_sends_the_token_and_who_the_agent_is() -> None:
    backend = FakeBackend()
    answer = await enroll_agent(
        base_url="https://app.example.com/",
        token=TOKEN,
        identity=IDENTITY,
        transport=backend.transport,
    )
    assert (answer.api_key, answer.name) == (KEY, "gpu-box")
    [request] = backend.requests
    assert (request.method, str(request.url)) == (
        "POST",
        "https://app.example.com/api/training/agent/enroll",
    )
    assert json.loads(request.content) == {
        "token": TOKEN,
        "agent_id": AGENT,
        "hostname": "gpu-box",
        "platform": "linux",
        "version": "1.2.3",
    }
    assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("backend", "error"),
    [
        (refusing(401, "ENROLLMENT_TOKEN_USED", f"{TOKEN} was used"), HttpStatusError),
        (FakeBackend(lambda _r: httpx.Response(201, text="<html>")), ProtocolError),
        (FakeBackend(lambda _r: httpx.Response(201, json={"api_key": "nope"})), ProtocolError),
    ],
)
async def test_the_call_converts_failures_and_never_repeats_the_token(
    backend: FakeBackend, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        await enroll_agent(
            base_url="https://app.example.com",
            token=TOKEN,
            identity=IDENTITY,
            transport=backend.transport,
        )
    assert TOKEN not in str(raised.value)
    assert len(backend.requests) == 1  # no retries in the api layer


async def test_an_unreachable_backend_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransportError, match=re.escape("cannot reach https://app.example.com")):
        await enroll_agent(
            base_url="https://app.example.com",
            token=TOKEN,
            identity=IDENTITY,
            transport=httpx.MockTransport(refuse),
        )


def test_the_file_is_read_and_a_broken_one_is_one_sentence(tmp_path: Path) -> None:
    assert read_enrollment_file(tmp_path) is None
    (tmp_path / ENROLL_FILE_NAME).write_text('{"backend_url": " https://a.example ", "x": 1}')
    assert read_enrollment_file(tmp_path) == EnrollmentFile(
        tmp_path / ENROLL_FILE_NAME, backend_url="https://a.example"
    )
    (tmp_path / ENROLL_FILE_NAME).write_text("[1, 2]")
    with pytest.raises(ConfigError, match="download the agent again"):
        read_enrollment_file(tmp_path)


def test_a_trade_returns_the_key_and_says_where_it_connects(tmp_path: Path) -> None:
    said: list[str] = []
    step = enroller(tmp_path, FakeBackend(), said=said)

    enrolled = step.enroll(None, AGENT)

    assert (enrolled.backend_url, enrolled.api_key) == ("https://app.example.com", KEY)
    assert said[0] == f"Enrolling this machine with https://app.example.com ({ENROLL_FILE_NAME})."
    assert all(KEY not in line for line in said)
    step.remove_file()
    assert not (tmp_path / ENROLL_FILE_NAME).exists()


def test_a_given_url_wins_over_the_files(tmp_path: Path) -> None:
    backend = FakeBackend()
    enroller(tmp_path, backend).enroll("https://other.example.com/", AGENT)
    assert backend.requests[0].url.host == "other.example.com"


@pytest.mark.parametrize("answers", [None, ["n"]])
def test_plain_http_to_another_host_is_asked_about_and_nothing_is_sent(
    tmp_path: Path, answers: list[str] | None
) -> None:
    backend = FakeBackend()
    step = enroller(tmp_path, backend, url="http://app.example.com", answers=answers)
    with pytest.raises(ConfigError) as raised:
        step.enroll(None, AGENT)
    assert "not encrypted" in str(raised.value) or "stopped before connecting" in str(raised.value)
    assert backend.requests == []


def test_plain_http_goes_ahead_when_the_user_says_yes(tmp_path: Path) -> None:
    backend = FakeBackend()
    step = enroller(tmp_path, backend, url="http://app.example.com", answers=["y"])
    assert step.enroll(None, AGENT).api_key == KEY
    assert len(backend.requests) == 1


def test_plain_http_on_this_machine_needs_no_question(tmp_path: Path) -> None:
    step = enroller(tmp_path, FakeBackend(), url="http://127.0.0.1:8000", answers=None)
    assert step.enroll(None, AGENT).api_key == KEY


def unreachable_except(host: str) -> FakeBackend:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host != host:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json=GOOD)

    return FakeBackend(answer)


def test_an_unreachable_backend_asks_for_another_address(tmp_path: Path) -> None:
    backend = unreachable_except("reachable.example.com")
    step = enroller(tmp_path, backend, answers=["https://reachable.example.com"])
    assert step.enroll(None, AGENT).backend_url == "https://reachable.example.com"
    assert [r.url.host for r in backend.requests] == ["app.example.com", "reachable.example.com"]


@pytest.mark.parametrize(("answers", "message"), [(None, "--backend-url"), ([""], "stopped")])
def test_an_unreachable_backend_without_an_answer_is_one_sentence(
    tmp_path: Path, answers: list[str] | None, message: str
) -> None:
    step = enroller(tmp_path, unreachable_except("none"), answers=answers)
    with pytest.raises(ConfigError, match=message) as raised:
        step.enroll(None, AGENT)
    assert "cannot reach https://app.example.com" in str(raised.value) or message == "stopped"


@pytest.mark.parametrize(
    ("backend", "error", "message"),
    [
        (
            refusing(
                401, "ENROLLMENT_TOKEN_EXPIRED", "This enrollment token has expired; download"
            ),
            CredentialError,
            "https://app.example.com refused the enrollment: This enrollment token has expired",
        ),
        (
            refusing(403, "AGENT_REVOKED", "revoked"),
            CredentialError,
            "this machine's agent was revoked on the Training Agent page",
        ),
        (
            refusing(
                429, "RATE_LIMITED", "Too many enrollments from this address; try again in 5 s"
            ),
            ConfigError,
            "try again in 5 s",
        ),
        (
            refusing(404, "NOT_FOUND", "Not Found"),
            ConfigError,
            "does not enroll agents (404); if the enrollment file was edited",
        ),
    ],
)
def test_each_refusal_is_one_sentence(
    tmp_path: Path, backend: FakeBackend, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        enroller(tmp_path, backend).enroll(None, AGENT)
    assert len(backend.requests) == 1


@pytest.mark.parametrize("token", ["wae_123", "wak_0123456789abcdefghijKLMNOPQRSTuv", ""])
def test_a_malformed_token_is_refused_before_anything_is_sent(tmp_path: Path, token: str) -> None:
    backend = FakeBackend()
    with pytest.raises(CredentialError, match="holds no valid enrollment token"):
        enroller(tmp_path, backend, token=token).enroll(None, AGENT)
    assert backend.requests == []
