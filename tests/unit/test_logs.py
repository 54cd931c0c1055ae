"""The agent's log never holds the API key or a job token, not even inside a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend, job
from training_agent import logs
from training_agent.logs import redact, register_secret, setup_logging
from training_agent.poller import Poller

API_KEY = "wak_" + "A1b2C3d4" * 4
JOB_TOKEN = "Zq9_-x" * 7 + "k"  # 43 url-safe characters, no recognisable prefix


@pytest.fixture
def agent_log(tmp_path: Path) -> Iterator[Path]:
    saved = {name: logging.getLogger(name).handlers[:] for name in ("training_agent", "uvicorn")}
    log_file = tmp_path / "agent.log"
    setup_logging("DEBUG", log_file=log_file, secrets=(API_KEY,))
    yield log_file
    for name, handlers in saved.items():
        for handler in logging.getLogger(name).handlers:
            handler.close()
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = True


def test_registered_job_tokens_are_redacted_in_messages_and_tracebacks(agent_log: Path) -> None:
    log = logging.getLogger("training_agent.test")
    register_secret(JOB_TOKEN)
    log.info("claimed with token %s and key %s", JOB_TOKEN, API_KEY)
    try:
        raise RuntimeError(f"upload failed for {JOB_TOKEN}")
    except RuntimeError:
        log.exception("job report failed")
    logging.getLogger("uvicorn.error").error("server saw Authorization: Bearer %s", JOB_TOKEN)

    # stderr has the same handler setup (tests/e2e/test_redaction.py checks a real agent's).
    written = agent_log.read_text()
    assert JOB_TOKEN not in written
    assert API_KEY not in written
    assert written.count("[redacted]") == 4
    assert "RuntimeError: upload failed for [redacted]" in written
    assert "server saw Authorization: Bearer [redacted]" in written


def test_key_shaped_and_bearer_values_are_redacted_without_registration() -> None:
    text = f"key {API_KEY} header Authorization: Bearer abc.def-123"
    assert redact(text) == "key [redacted] header Authorization: Bearer [redacted]"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc abc") == "abc abc"


def test_the_registry_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_registered", type(logs._registered)())
    for i in range(logs.MAX_REGISTERED + 10):
        register_secret(f"token-{i:08d}")
    kept = logs.registered_secrets()
    assert len(kept) == logs.MAX_REGISTERED
    assert kept[-1] == f"token-{logs.MAX_REGISTERED + 9:08d}"


async def test_a_claimed_jobs_token_is_registered_for_redaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "_registered", type(logs._registered)())
    backend = FakeBackend()
    backend.on(
        "GET /api/training/agent/poll",
        httpx.Response(200, json={"job": job(), "poll_interval_seconds": 5}),
    )
    backend.on(
        "POST /api/training/agent/claim/job-1",
        httpx.Response(200, json={"success": True, "job_token": JOB_TOKEN, "job": job()}),
    )
    client = backend.client()
    try:
        step = await Poller(client=client).step(can_claim=True)
    finally:
        await client.aclose()
    assert step.job is not None
    assert JOB_TOKEN in logs.registered_secrets()
    assert redact(f"token={JOB_TOKEN}") == "token=[redacted]"
