"""Texts from a job or the backend are shown as they are: never read as markup."""

from __future__ import annotations

from rich.text import Text

from tests.support.fake_status import FakeSource, clock, finished_job, running_job, snapshot
from training_agent.tui.app import create_app
from training_agent.tui.screens.confirm import ConfirmScreen
from training_agent.tui.screens.full_log import FullLogScreen
from training_agent.tui.widgets.jobs_table import JobsTable
from training_agent.tui.widgets.log_tail import LogTail

SIZE = (100, 30)
HOSTILE_LINES = ["[/]", "[bold red]not bold[/]", "[link=https://evil.example]x[/link]"]


def hostile_source() -> FakeSource:
    first = snapshot(jobs=0, state="refused", reason="[/] refused \x1b[2J")
    first["jobs"] = [running_job(id="[/]", model_name="[/]")]
    first["recent_jobs"] = [finished_job("[b]", "failed", "[/]\x1b]0;title\x07")]
    return FakeSource(first, log=HOSTILE_LINES)


def row_text(table: JobsTable, row: int) -> list[str]:
    return [cell.plain if isinstance(cell, Text) else str(cell) for cell in table.get_row_at(row)]


def strip_text(log: LogTail) -> list[str]:
    return ["".join(segment.text for segment in strip) for strip in log.lines]


async def test_a_job_named_markup_is_shown_as_it_is() -> None:
    source = hostile_source()
    app = create_app(lambda: source, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        table = app.query_one(JobsTable)
        assert row_text(table, 0)[:3] == ["[/]", "[/]", "running"]
        assert row_text(table, 1)[0] == "[b]"
        assert "\\x1b]0;title" in row_text(table, 1)[-1] or row_text(table, 1)[-1].startswith("[/]")
        shown = strip_text(app.query_one(LogTail))
        assert [line.rstrip() for line in shown[-3:]] == HOSTILE_LINES

        await pilot.press("c")  # "Cancel job [/]?"
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert source.calls == [("cancel", "[/]")]

        app.query_one(JobsTable).focus()
        await pilot.press("l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, FullLogScreen)
        assert "log of job [/]" in str(app.screen.query_one("#title").render())
        await pilot.press("escape")
        await pilot.pause(0.1)
    assert app.return_code in (None, 0)
