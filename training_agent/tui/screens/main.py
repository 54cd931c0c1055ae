"""The dashboard's one full screen: the layout, and drawing the model into it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from training_agent.tui.model import DashboardModel
from training_agent.tui.widgets.connection_bar import ConnectionBar
from training_agent.tui.widgets.job_detail import JobDetail
from training_agent.tui.widgets.jobs_table import JobsTable
from training_agent.tui.widgets.log_tail import LogTail
from training_agent.tui.widgets.loss_chart import LossChart
from training_agent.tui.widgets.machine_panel import MachinePanel
from training_agent.tui.widgets.uploads_panel import UploadsPanel


class MainScreen(Screen[None]):
    """Connection; jobs; uploads (when any); the selected job and its loss; its log and
    the machine."""

    class Ready(Message):
        """The widgets are mounted: the app may draw (what came before is drawn now)."""

    DEFAULT_CSS = """
    MainScreen #middle { height: 2fr; min-height: 7; border-top: solid $primary; }
    MainScreen #bottom { height: 3fr; min-height: 5; border-top: solid $primary; }
    MainScreen JobsTable {
        border-top: solid $primary; height: auto; max-height: 8; min-height: 3;
    }
    """

    ready = False  # True once the widgets are mounted

    def compose(self) -> ComposeResult:
        yield ConnectionBar()
        yield JobsTable(id="jobs")
        yield UploadsPanel()
        with Horizontal(id="middle"):
            yield JobDetail()
            yield LossChart()
        with Horizontal(id="bottom"):
            yield LogTail()
            yield MachinePanel()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(JobsTable).border_title = "jobs"
        self.query_one(UploadsPanel).border_title = "uploads"
        self.query_one(UploadsPanel).display = False
        self.query_one("#middle").border_title = "selected job · loss"
        self.query_one("#bottom").border_title = "log · machine"
        self.ready = True
        self.post_message(self.Ready())

    def show(self, model: DashboardModel, now: float) -> str | None:
        """Draw ``model`` as of ``now``; the selected job's id (``None`` before the screen
        is ready, and once its widgets are gone: the app is closing)."""
        if not self.ready:
            return None
        try:
            return self._draw(model, now)
        except NoMatches:
            return None  # a model change that arrived as the app took its widgets down

    def _draw(self, model: DashboardModel, now: float) -> str | None:
        extra = max(0.0, now - model.received_at) if model.snapshot else 0.0
        self.query_one(ConnectionBar).show(model, now)
        table = self.query_one(JobsTable)
        table.show(model.jobs(), elapsed_extra_s=extra)
        selected = table.selected
        self.query_one(JobDetail).show(model.job(selected), elapsed_extra_s=extra)
        chart = self.query_one(LossChart)
        if selected is None:
            chart.show((), ())
        else:
            chart.show(model.series(selected, "train_loss"), model.series(selected, "eval_loss"))
        self.query_one(LogTail).show(selected, model.logs.get(selected) if selected else None)
        self.query_one(UploadsPanel).show((model.snapshot or {}).get("uploads") or [])
        resources = (model.snapshot or {}).get("resources")
        self.query_one(MachinePanel).show(model.usage, resources)
        return selected
