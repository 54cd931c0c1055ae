"""Live events reach the chart, the details and the log; a flood of them coalesces."""

from __future__ import annotations

import copy

from tests.support.fake_status import JOB_ID, running_job, snapshot
from tests.tui.conftest import MakeApp
from training_agent.tui.widgets.log_tail import LogTail
from training_agent.tui.widgets.uploads_panel import UploadsPanel

SIZE = (80, 24)


async def test_metrics_and_log_lines_follow_the_job(make_app: MakeApp) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        source.push("metrics", {"job_id": JOB_ID, "points": [{"step": 370, "train_loss": 0.2}]})
        # Line 36 is new; 35 was in the backfilled tail and must not show twice.
        source.push("log", {"job_id": JOB_ID, "first_line": 35, "lines": ["old line", "new line"]})
        await pilot.pause(0.1)
        assert app.model.series(JOB_ID, "train_loss")[-1] == (370, 0.2)
        shown = [strip.text for strip in app.query_one(LogTail).lines]
        assert shown[-1] == "new line"
        assert "old line" not in shown
        assert len(app.model.logs[JOB_ID].lines) == 37


async def test_a_flood_of_updates_is_drawn_coalesced(make_app: MakeApp) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        before = app.redraws
        state = snapshot(jobs=1)
        for step in range(361, 861):  # 500 events queued at once
            point = {"step": step, "epoch": step / 300, "train_loss": 1 / step}
            source.push("metrics", {"job_id": JOB_ID, "points": [point]})
            state = copy.deepcopy(state)
            state["jobs"] = [running_job(step=step, progress=step / 1000)]
            source.push("status", state)
        await pilot.pause(0.3)
        assert app.model.job(JOB_ID)["step"] == 860  # type: ignore[index]
        assert len(app.model.series(JOB_ID, "train_loss")) == 36 + 500
        # Every point arrived, but far fewer redraws than the 1,000 messages posted.
        assert app.redraws - before < 100


async def test_quit_may_stop_the_agent_it_started(make_app: MakeApp) -> None:
    app, _ = make_app(spawned=_Running())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("q")
        await pilot.press("y")
        await pilot.pause()
    assert app.stop_agent


class _Running:
    console_log = "/tmp/console.log"

    def exited(self) -> None:
        return None


async def test_uploads_show_with_rate_and_time_left_and_take_no_room_otherwise(
    make_app: MakeApp,
) -> None:
    app, source = make_app(jobs=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        panel = app.query_one(UploadsPanel)
        assert not panel.display
        state = snapshot(jobs=1)
        state["uploads"] = [
            {
                "job_id": JOB_ID,
                "name": "final_adapter.tar",
                "kind": "adapter",
                "state": "uploading",
                "size_bytes": 64 * 1024 * 1024,
                "sent_bytes": 16 * 1024 * 1024,
                "rate_bps": 50_000_000.0,
                "eta_s": 1.0,
            }
        ]
        source.push("status", state)
        await pilot.pause(0.2)
        assert panel.display
        text = str(panel.render())
        assert "final_adapter.tar" in text and "(25%)" in text
        assert "50.0 MB/s" in text and "1s left" in text
