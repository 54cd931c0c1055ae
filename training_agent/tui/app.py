"""The dashboard app: ``create_app`` is the one factory the CLI and the tests use.

Workers do every call to the agent (attach and follow ``/v1/events``, sample
``/v1/resources``, cancel, drain, resume, start an agent) and update ``DashboardModel``;
each update posts ``DashboardApp.ModelChanged``, which coalesces (``can_replace``), so at
any event rate the screen redraws at most once per message-loop turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from training_agent.errors import AgentNotRunningError, TrainingAgentError
from training_agent.tui.launch import SpawnedAgent
from training_agent.tui.model import Attach, DashboardModel
from training_agent.tui.screens.confirm import ConfirmScreen
from training_agent.tui.screens.full_log import FullLogScreen
from training_agent.tui.screens.help import HelpScreen
from training_agent.tui.screens.main import MainScreen
from training_agent.tui.screens.no_agent import NoAgentScreen
from training_agent.tui.source import Connector, StatusSource
from training_agent.tui.text import printable
from training_agent.tui.widgets.jobs_table import JobsTable

RETRY_S = 1.0  # between attach attempts while no agent answers
USAGE_INTERVAL_S = 2.0  # how often the machine's load is read
BACKFILL_LOG_LINES = 200  # log lines fetched for a job seen for the first time

Launcher = Callable[[], SpawnedAgent]  # starts an agent in the background


class DashboardApp(App[int]):
    """Watches one agent through its status API. Quitting leaves the agent running."""

    TITLE = "training-agent"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_job", "Cancel job"),
        Binding("d", "toggle_drain", "Drain/resume"),
        Binding("l", "open_log", "Full log"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    @dataclass
    class ModelChanged(Message):
        """The model changed; only the newest of several pending ones is handled."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, DashboardApp.ModelChanged)

    def __init__(
        self,
        connector: Connector,
        *,
        clock: Callable[[], float] = time.time,
        launcher: Launcher | None = None,
        spawned: SpawnedAgent | None = None,
        retry_s: float = RETRY_S,
        usage_interval_s: float = USAGE_INTERVAL_S,
    ) -> None:
        """``spawned``: the agent ``start --dashboard`` runs; quitting asks whether to stop it."""
        super().__init__()
        self.model = DashboardModel()
        self._connector = connector
        self._clock = clock
        self._launcher = launcher
        self.spawned = spawned
        self._owns_agent = spawned is not None
        self.stop_agent = False  # the answer to "stop the agent too?" when quitting
        self._retry_s = retry_s
        self._usage_interval_s = usage_interval_s
        self._source: StatusSource | None = None
        self._backfilled: set[str] = set()
        self._selected: str | None = None
        self.redraws = 0  # how many ModelChanged were handled (tests check coalescing)

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(id="_default")

    def on_mount(self) -> None:
        self.follow_agent()
        self.set_interval(1.0, self._redraw)

    # -- workers: every call to the agent -----------------------------------------------

    @work(exclusive=True, group="attach")
    async def follow_agent(self) -> None:
        """Attach, follow the event stream, and attach again whenever it ends."""
        while True:
            try:
                source = self._connector()
            except AgentNotRunningError as exc:
                self._not_running(str(exc))
            except TrainingAgentError as exc:
                self._detached(Attach.LOST, str(exc))
            else:
                await self._follow(source)
            await asyncio.sleep(self._retry_s)

    async def _follow(self, source: StatusSource) -> None:
        self._source = source
        try:
            async for event in source.events():
                self.model.apply(event)
                if event.name == "status":
                    if self.model.attach is not Attach.ATTACHED:
                        self.sample_usage()  # at once, not at the next tick
                    self.model.attach, self.model.attach_reason = Attach.ATTACHED, None
                    self.model.received_at = self._clock()
                    await self._backfill(source)
                self.post_message(self.ModelChanged())
            self._detached(Attach.LOST, "the agent closed its status API (it is stopping)")
        except AgentNotRunningError as exc:
            self._detached(Attach.NO_AGENT, str(exc))
        except TrainingAgentError as exc:
            self._detached(Attach.LOST, str(exc))
        finally:
            self._source = None
            await source.aclose()

    async def _backfill(self, source: StatusSource) -> None:
        """The chart points and log lines of jobs seen for the first time."""
        for job in self.model.jobs():
            job_id = str(job["id"])
            if job_id in self._backfilled:
                continue
            self._backfilled.add(job_id)
            try:
                self.model.add_points(job_id, await source.job_metrics(job_id))
                first, lines = await source.job_log(job_id, tail=BACKFILL_LOG_LINES)
            except TrainingAgentError:
                continue  # a finished job the agent no longer keeps details of
            self.model.log(job_id).add(first, lines)

    @work(exclusive=True, group="usage")
    async def sample_usage(self) -> None:
        while True:
            source = self._source
            if source is not None:
                try:
                    self.model.usage = await source.resources()
                except TrainingAgentError:
                    self.model.usage = None  # an older agent: the snapshot's resources
                self.post_message(self.ModelChanged())
            await asyncio.sleep(self._usage_interval_s)

    @work(group="control")
    async def call_agent(self, action: str, job_id: str | None = None) -> None:
        source = self._source
        if source is None:
            self.notify("Not attached to an agent.", severity="error")
            return
        try:
            if action == "cancel" and job_id is not None:
                await source.cancel(job_id)
                self.notify(f"Cancelling job {printable(job_id)}.", markup=False)
            elif action == "drain":
                await source.drain()
                self.notify("Draining: running jobs finish, no new job is claimed.")
            else:
                await source.resume()
                self.notify("Claiming new jobs again.")
        except TrainingAgentError as exc:
            self.notify(printable(exc), severity="error", markup=False)

    @work(exclusive=True, group="launch", thread=True)
    def start_agent(self) -> None:
        """Start an agent in the background (a thread: spawning a process blocks)."""
        if self._launcher is None or (self.spawned and self.spawned.exited() is None):
            return
        try:
            self.spawned = self._launcher()
        except (OSError, TrainingAgentError) as exc:
            self.call_from_thread(self.notify, f"Could not start it: {exc}", severity="error")
        else:
            where = self.spawned.console_log
            self.call_from_thread(self.notify, f"Starting the agent; its output: {where}")

    def _not_running(self, reason: str) -> None:
        spawned = self.spawned
        if spawned is not None and spawned.exited() is None:
            pid = spawned.process.pid
            self._detached(Attach.CONNECTING, f"starting the agent (pid {pid})…")
        else:
            exited = None if spawned is None else spawned.exited()
            self._detached(Attach.NO_AGENT, exited or reason)

    def _detached(self, attach: Attach, reason: str) -> None:
        self.model.attach, self.model.attach_reason = attach, reason
        self.post_message(self.ModelChanged())

    # -- handlers: redraw from the model, no I/O ----------------------------------------

    def on_dashboard_app_model_changed(self, message: ModelChanged) -> None:
        self.redraws += 1
        self._redraw()

    def on_main_screen_ready(self, message: MainScreen.Ready) -> None:
        self._redraw()

    def on_jobs_table_selected(self, message: JobsTable.Selected) -> None:
        self._selected = message.job_id
        self._redraw()

    def on_jobs_table_opened(self, message: JobsTable.Opened) -> None:
        self.action_open_log()

    def _redraw(self) -> None:
        if not self.screen_stack or self.return_code is not None:
            return  # exiting: the screens are going away
        self._show_no_agent(self.model)
        main = self.screen_stack[0]
        assert isinstance(main, MainScreen)
        self._selected = main.show(self.model, self._clock())

    def _show_no_agent(self, model: DashboardModel) -> None:
        showing = isinstance(self.screen, NoAgentScreen)
        if model.attach is Attach.NO_AGENT and not showing:
            self.push_screen(NoAgentScreen(model.attach_reason))
        elif model.attach is Attach.NO_AGENT and isinstance(self.screen, NoAgentScreen):
            self.screen.show_reason(model.attach_reason)
        elif model.attach is not Attach.NO_AGENT and showing:
            self.pop_screen()

    # -- actions ------------------------------------------------------------------------

    def action_cancel_job(self) -> None:
        job_id = self._selected
        if job_id is None or job_id not in self.model.running_ids():
            self.notify("Select a running job to cancel it.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_agent("cancel", job_id)

        self.push_screen(
            ConfirmScreen(
                f"Cancel job {job_id}? The trainer is stopped (it may checkpoint first) "
                "and the job is reported cancelled.",
                yes="Cancel the job",
            ),
            answered,
        )

    def action_toggle_drain(self) -> None:
        if self.model.snapshot is None:
            self.notify("Not attached to an agent.", severity="error")
            return
        self.call_agent("resume" if self.model.snapshot.get("draining") else "drain")

    def action_open_log(self) -> None:
        if self._selected is None or self._source is None:
            self.notify("Select a job to see its log.", severity="warning")
            return
        self.push_screen(FullLogScreen(self._selected, self._source))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(list(self.BINDINGS)))

    def action_start_agent(self) -> None:
        if self._launcher is None:
            self.notify("Start it with 'training-agent start'.", severity="warning")
            return
        self.start_agent()

    async def action_quit(self) -> None:
        if not self._owns_agent or self.spawned is None or self.spawned.exited() is not None:
            self.exit(0)
            return

        def answered(stop: bool | None) -> None:
            self.stop_agent = bool(stop)
            self.exit(0)

        self.push_screen(
            ConfirmScreen(
                "Stop the agent as well? It finishes its running job first. "
                "No: it keeps running in the background.",
                yes="Stop the agent",
            ),
            answered,
        )


def create_app(
    connector: Connector,
    *,
    clock: Callable[[], float] = time.time,
    launcher: Launcher | None = None,
    **options: Any,
) -> DashboardApp:
    """The dashboard for the agent ``connector`` finds (the CLI's and the tests' one way in)."""
    return DashboardApp(connector, clock=clock, launcher=launcher, **options)
