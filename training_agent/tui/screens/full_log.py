"""One job's whole log as the agent keeps it (its last 2,000 lines), scrollable."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Label, RichLog

from training_agent.errors import TrainingAgentError
from training_agent.status.state import LOG_TAIL_LINES
from training_agent.tui.source import StatusSource
from training_agent.tui.text import plain


class FullLogScreen(Screen[None]):
    DEFAULT_CSS = """
    FullLogScreen Label { padding: 0 1; background: $panel; width: 100%; }
    FullLogScreen RichLog { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,l", "close", "Back")]

    def __init__(self, job_id: str, source: StatusSource) -> None:
        super().__init__()
        self.job_id = job_id
        self._source = source

    def compose(self) -> ComposeResult:
        yield Label(plain(f"log of job {self.job_id} (loading…)"), id="title")
        yield RichLog(max_lines=LOG_TAIL_LINES, wrap=True, markup=False, id="lines")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        title = self.query_one("#title", Label)
        try:
            first, lines = await self._source.job_log(self.job_id, tail=LOG_TAIL_LINES)
        except TrainingAgentError as exc:
            title.update(plain(f"log of job {self.job_id}: {exc}"))
            return
        log = self.query_one("#lines", RichLog)
        for line in lines or ["(no lines yet)"]:
            log.write(plain(line))
        earlier = f"; lines before {first + 1} are on the platform's job page" if first else ""
        shown = f"lines {first + 1}-{first + len(lines)}{earlier}"
        title.update(plain(f"log of job {self.job_id}: {shown}  (Esc: back)"))

    def action_close(self) -> None:
        self.dismiss(None)
