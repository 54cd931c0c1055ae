"""Fixtures shared by the status tests: an agent state with one running job, and a
controller that records what the status API asked of it."""

from __future__ import annotations

import pytest

from training_agent.status.state import AgentState


class FakeController:
    """Records what the API asked; ``running`` says which jobs can be cancelled."""

    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.calls: list[tuple[str, ...]] = []
        self.running = {"job-1"}

    def drain(self) -> None:
        self.calls.append(("drain",))
        self.state.set_draining(True)

    def resume(self) -> None:
        self.calls.append(("resume",))
        self.state.set_draining(False)

    def cancel_job(self, job_id: str, reason: str) -> bool:
        self.calls.append(("cancel_job", job_id, reason))
        return job_id in self.running


@pytest.fixture
def state() -> AgentState:
    state = AgentState(agent_id="agent_0123456789abcdef", version="1.2.3", backend_url="http://b")
    state.poll_succeeded(latency_s=0.02, features=frozenset())
    state.job_started("job-1", model_name="tiny")
    state.job_progress("job-1", total_steps=10, total_epochs=1)
    state.job_metric("job-1", {"step": 3, "epoch": 0.3, "train_loss": 0.7})
    state.job_log("job-1", "epoch 0 step 3")
    return state


@pytest.fixture
def controller(state: AgentState) -> FakeController:
    return FakeController(state)
