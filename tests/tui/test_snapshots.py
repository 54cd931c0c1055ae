"""The dashboard's layout at 80x24 in each state that matters (pytest-textual-snapshot).

The source is fake and the clock fixed, so every rendering is the same on every run;
``--snapshot-update`` rewrites them after an intended change (then look at the SVGs).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from tests.support.fake_status import NOW
from tests.tui.conftest import MakeApp

SIZE = (80, 24)


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.2)  # the attach, the backfill and the first usage sample
    await pilot.pause()


STATES: dict[str, dict[str, Any]] = {
    "idle": {"jobs": 0},
    "running": {"jobs": 1},
    "unreachable": {
        "jobs": 1,
        "state": "unreachable",
        "reason": "connection refused",
        "next_retry_at": NOW + 17,
        "long_poll": False,
    },
    "key_rejected": {
        "jobs": 0,
        "state": "rejected",
        "reason": "the backend answered 401: invalid API key",
        "next_retry_at": NOW + 290,
        "long_poll": False,
    },
    "revoked": {
        "jobs": 0,
        "state": "revoked",
        "reason": "this agent was removed on the platform",
        "long_poll": False,
    },
}


@pytest.mark.parametrize("state", list(STATES))
def test_layout(state: str, make_app: MakeApp, snap_compare: Any) -> None:
    app, _ = make_app(**STATES[state])
    assert snap_compare(app, terminal_size=SIZE, run_before=settled)
