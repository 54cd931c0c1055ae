"""A stopping server ends its held long polls instead of waiting out their hold."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support.backend import BackendProcess

HOLD_S = 30


def test_sigterm_answers_held_long_polls_and_exits(backend: BackendProcess) -> None:
    backend.cli("users", "create", "sleepy", "--no-password")
    key = backend.cli("keys", "create", "--user", "sleepy").strip()
    answers: list[httpx.Response] = []

    def hold() -> None:
        answers.append(
            httpx.get(
                f"{backend.url}/api/training/agent/poll",
                params={"wait_seconds": HOLD_S},
                headers={"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_0123456789abcdef"},
                timeout=HOLD_S + 10,
            )
        )

    poller = threading.Thread(target=hold)
    poller.start()
    time.sleep(1.0)  # let the poll reach its hold (not a timing assertion)
    started = time.monotonic()
    backend.process.terminate()
    backend.process.wait(timeout=HOLD_S)
    poller.join(timeout=HOLD_S)

    # Without the wake-up the exit waits for the hold: about HOLD_S seconds.
    assert time.monotonic() - started < HOLD_S / 2
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["job"] is None
