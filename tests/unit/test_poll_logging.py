"""What the poll loop says about failed polls: a blip is one WARNING line, an outage one
ERROR with what to do and one line when it ends, a lasting failure one ERROR at once."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.poller import Connection, Poller

POLL = "GET /api/training/agent/poll"
OK = httpx.Response(200, json={"job": None, "features": ["heartbeat"]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


def make_poller(backend: FakeBackend, clock: Clock) -> Poller:
    return Poller(
        client=backend.client(), min_interval_s=1.0, sleep=no_sleep, rng=lambda: 1.0, clock=clock
    )


def reset(_request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("reset", request=_request)


def said(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "training_agent.poller" and r.levelno == level]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(503, json={"error": "busy", "code": "UNAVAILABLE"}),
        reset,
    ],
    ids=["502", "503", "reset"],
)
async def test_one_failed_poll_the_next_mends_is_one_warning_line(
    backend: FakeBackend, failure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    poller = make_poller(backend, clock)
    backend.on(POLL, OK)
    await poller.step(can_claim=True)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="training_agent.poller"):
        backend.on(POLL, failure)
        await poller.step(can_claim=True)
        clock.now += 2.0
        backend.on(POLL, OK)
        await poller.step(can_claim=True)

    assert said(caplog, logging.ERROR) == []
    [warning] = said(caplog, logging.WARNING)
    assert warning.getMessage().startswith("poll failed (")
    assert "retrying in 2.0s (attempt 1)" in warning.getMessage()
    assert warning.exc_info is None and "\n" not in warning.getMessage()
    assert said(caplog, logging.INFO) == []  # nothing to announce: the link never went away
    assert poller.connection is Connection.CONNECTED


async def test_an_outage_is_one_error_with_what_to_do_and_one_line_when_it_ends(
    backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    poller = make_poller(backend, clock)
    backend.on(POLL, reset)
    with caplog.at_level(logging.DEBUG, logger="training_agent.poller"):
        for _ in range(12):  # about four minutes of failed polls
            delay = (await poller.step(can_claim=True)).delay_s
            clock.now += delay
        backend.on(POLL, OK)
        await poller.step(can_claim=True)

    warnings = said(caplog, logging.WARNING)
    assert 1 <= len(warnings) <= 5  # the first minute's tries, one line each
    [error] = said(caplog, logging.ERROR)
    message = error.getMessage()
    assert message.startswith("poll has failed for ")
    assert "check this machine's network" in message and "connection" in message
    assert error.exc_info is None
    recovered = [r for r in said(caplog, logging.INFO) if "works again" in r.getMessage()]
    assert len(recovered) == 1
    assert recovered[0].getMessage().startswith("poll works again after ")


async def test_an_untrusted_certificate_is_an_error_at_once_said_once(
    backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    def untrusted(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        cause.verify_message = "self-signed certificate"
        raise httpx.ConnectError("tls", request=request) from cause

    clock = Clock()
    poller = make_poller(backend, clock)
    backend.on(POLL, untrusted)
    with caplog.at_level(logging.DEBUG, logger="training_agent.poller"):
        for _ in range(3):
            clock.now += (await poller.step(can_claim=True)).delay_s

    assert said(caplog, logging.WARNING) == []
    [error] = said(caplog, logging.ERROR)
    assert "TLS certificate is not trusted (self-signed certificate)" in error.getMessage()
    assert "trust store" in error.getMessage()
    assert poller.connection is Connection.UNREACHABLE  # still tried: it may be fixed
