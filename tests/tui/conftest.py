"""Fixtures for the dashboard's tests: a fake status source and the app built on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fake_status import USAGE, FakeSource, clock, loss_points, snapshot
from training_agent.tui.app import DashboardApp, create_app

MakeApp = Callable[..., tuple[DashboardApp, FakeSource]]


@pytest.fixture
def make_app() -> MakeApp:
    """``make_app(jobs=1, **connection)``: the app attached to a fake agent, fixed clock."""

    def make(*, jobs: int = 1, source: FakeSource | None = None, **options: Any) -> Any:
        connection = {k: options.pop(k) for k in list(options) if k not in _APP_OPTIONS}
        source = source or FakeSource(
            snapshot(jobs=jobs, **connection),
            points=loss_points(),
            log=[f"step {i * 10}: loss {2.0 / (1 + i / 6):.3f}" for i in range(1, 37)],
            usage=USAGE,
        )
        return create_app(lambda: source, clock=clock, **options), source

    return make


_APP_OPTIONS = {"launcher", "spawned", "retry_s", "usage_interval_s"}
