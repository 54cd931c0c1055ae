"""Every dashboard action through Textual's pilot, against a fake agent."""

from __future__ import annotations

import pytest
from rich.table import Table
from textual.binding import Binding
from textual.widgets import Static

from tests.support.fake_status import JOB_ID, FakeSource, clock, no_agent, snapshot
from tests.tui.conftest import MakeApp
from training_agent.tui.app import create_app
from training_agent.tui.model import Attach
from training_agent.tui.screens.confirm import ConfirmScreen
from training_agent.tui.screens.full_log import FullLogScreen
from training_agent.tui.screens.help import HelpScreen
from training_agent.tui.screens.main import MainScreen
from training_agent.tui.screens.no_agent import NoAgentScreen
from training_agent.tui.widgets.connection_bar import ConnectionBar
from training_agent.tui.widgets.jobs_table import JobsTable
from training_agent.tui.widgets.log_tail import LogTail

SIZE = (80, 24)


async def test_attach_shows_the_agent_and_its_job(make_app: MakeApp) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert app.model.attach is Attach.ATTACHED
        assert app.query_one(JobsTable).selected == JOB_ID
        assert len(app.model.series(JOB_ID, "train_loss")) == 36  # backfilled history
        assert app.query_one(LogTail).lines  # backfilled log tail
        assert app.model.usage is not None and app.model.usage["cpu_percent"] == 37.5


@pytest.mark.parametrize("answer", ["y", "n"])
async def test_cancel_asks_first(make_app: MakeApp, answer: str) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(answer)
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.calls == ([("cancel", JOB_ID)] if answer == "y" else [])


async def test_cancel_with_the_mouse(make_app: MakeApp) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("c")
        assert await pilot.click("#yes")
        await pilot.pause(0.1)
        assert source.calls == [("cancel", JOB_ID)]


async def test_a_finished_job_cannot_be_cancelled(make_app: MakeApp) -> None:
    app, source = make_app(jobs=0)  # only recent jobs
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.calls == []


async def test_drain_and_resume(make_app: MakeApp) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert source.calls == [("drain",)]
        assert app.model.snapshot is not None and app.model.snapshot["draining"]
        await pilot.press("d")
        await pilot.pause(0.1)
        assert source.calls == [("drain",), ("resume",)]


async def test_a_model_change_while_the_widgets_go_away_is_not_an_error(
    make_app: MakeApp,
) -> None:
    # As the app closes, its widgets are removed while a model change may still be queued.
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        main = app.screen_stack[0]
        assert isinstance(main, MainScreen)
        await main.query_one(ConnectionBar).remove()
        assert main.show(app.model, 0.0) is None
        app.post_message(app.ModelChanged())
        await pilot.pause(0.1)


async def test_selecting_a_job_with_keys_and_mouse(make_app: MakeApp) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        table = app.query_one(JobsTable)
        await pilot.press("down")
        assert table.selected == "5b0d3e1f-aaaa"
        # The header is row 0 of the table widget, the first job row 1 (below its border).
        await pilot.click(JobsTable, offset=(2, 2))
        await pilot.pause()
        assert table.selected == JOB_ID


@pytest.mark.parametrize("key", ["l", "enter"])
async def test_full_log(make_app: MakeApp, key: str) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        app.query_one(JobsTable).focus()
        await pilot.press(key)
        await pilot.pause(0.1)
        assert isinstance(app.screen, FullLogScreen)
        assert app.screen.job_id == JOB_ID
        assert "lines 1-36" in str(app.screen.query_one("#title").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, FullLogScreen)


async def test_help_lists_every_key(make_app: MakeApp) -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#keys", Static).content
        assert isinstance(table, Table)
        shown = [cell for column in table.columns for cell in column.cells]
        for binding in app.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_quit_leaves_the_agent_alone(make_app: MakeApp) -> None:
    app, source = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert source.calls == []
    assert not app.stop_agent


async def test_no_agent_offers_to_start_one() -> None:
    source = FakeSource(snapshot(jobs=0))
    started: list[bool] = []

    def connector() -> FakeSource:
        return source if started else no_agent()

    def launcher() -> object:
        started.append(True)
        return _Started()

    app = create_app(connector, clock=clock, launcher=launcher, retry_s=0.05)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert isinstance(app.screen, NoAgentScreen)
        await pilot.press("s")
        await pilot.pause(0.3)
        assert started == [True]
        assert app.model.attach is Attach.ATTACHED
        assert not isinstance(app.screen, NoAgentScreen)


async def test_a_lost_agent_is_attached_again(make_app: MakeApp) -> None:
    app, source = make_app(retry_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        source.end()  # the agent stopped: its stream ends
        await pilot.pause(0.02)
        assert app.model.attach is not Attach.ATTACHED or source.closed
        await pilot.pause(0.2)
        assert app.model.attach is Attach.ATTACHED


async def test_no_color(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert app.no_color


class _Started:
    """What the launcher returns: an agent that is (as far as the app can tell) running."""

    console_log = "/tmp/console.log"

    def exited(self) -> None:
        return None
