"""``training-agent status``: the snapshot as a few readable lines."""

from __future__ import annotations

import pytest

from training_agent.status.state import AgentState, JobViewStatus
from training_agent.status.text import duration, render


def make_state() -> AgentState:
    return AgentState(agent_id="agent_0123456789abcdef", version="1.2.3", backend_url="http://b")


def test_a_connected_agent_with_a_running_and_a_failed_job() -> None:
    state = make_state()
    state.poll_succeeded(latency_s=0.012, features=frozenset({"long_poll"}))
    state.poll_started(long_poll=True)
    state.job_started("old", model_name=None)
    state.job_finished(
        "old", status=JobViewStatus.FAILED, error="exit code 3: CUDA out of memory\nmore"
    )
    state.job_started("job-1", model_name="llama-tiny")
    state.jobs["job-1"].started_at -= 62
    state.job_progress("job-1", total_steps=600, total_epochs=3)
    state.job_metric("job-1", {"step": 120, "epoch": 0.6, "train_loss": 0.693147})

    text = render(state.snapshot())

    assert "agent     agent_0123456789abcdef  training-agent 1.2.3" in text
    assert "backend   http://b" in text
    assert "link      connected (long poll, held 0s)  last poll 0s ago, 12 ms" in text
    assert "claiming  yes" in text
    assert "running   1 job\n" in text
    assert (
        "  job-1  llama-tiny  running  step 120/600 (20%)  epoch 0.60/3  loss 0.6931  "
        "1m 02s, 4m 08s left"
    ) in text
    assert "  old  failed  0s  ended 0s ago  (exit code 3: CUDA out of memory)" in text


def test_an_unreachable_backend_shows_why_and_when_the_next_try_is() -> None:
    state = make_state()
    state.poll_failed(state="unreachable", reason="connection refused", retry_in_s=42.5)
    state.set_draining(True)
    text = render(state.snapshot())
    assert "link      backend unreachable: connection refused; next try in 42s" in text
    assert "claiming  no (draining: finishing running jobs)" in text
    assert "running   0 jobs" in text


@pytest.mark.parametrize(
    ("state_name", "shown"),
    [("rejected", "API key rejected"), ("revoked", "agent revoked on the platform")],
)
def test_rejected_and_revoked(state_name: str, shown: str) -> None:
    state = make_state()
    state.poll_failed(state=state_name, reason="the reason", retry_in_s=None)
    assert f"link      {shown}: the reason" in render(state.snapshot())


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0s"), (42.9, "42s"), (187, "3m 07s"), (7380, "2h 03m"), (367200, "4d 06h")],
)
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_texts_from_jobs_and_the_backend_cannot_drive_the_terminal() -> None:
    state = make_state()
    state.poll_failed(state="refused", reason="bad\x1b]0;owned\x07 answer", retry_in_s=None)
    state.job_started("job-1", model_name="\x1b[2Jllama\nrunning   0 jobs")
    state.job_started("old", model_name=None)
    state.job_finished("old", status=JobViewStatus.FAILED, error="boom\x1b[31m\u202eevil\nmore")

    text = render(state.snapshot())

    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "  job-1  \\x1b[2Jllama\\x0arunning   0 jobs  running" in text  # one line
    assert "(boom\\x1b[31m\\u202eevil)" in text
    assert "refused by the backend: bad\\x1b]0;owned\\x07 answer" in text
