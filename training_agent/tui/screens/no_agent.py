"""Shown while no agent runs here: say so, offer to start one, or quit."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from training_agent.tui.text import plain


class NoAgentScreen(ModalScreen[None]):
    """Dismissed by the app as soon as an agent answers (one started here or elsewhere)."""

    DEFAULT_CSS = """
    NoAgentScreen { align: center middle; }
    NoAgentScreen > Vertical {
        width: 64; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    NoAgentScreen Horizontal { height: auto; margin-top: 1; }
    NoAgentScreen Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "app.start_agent", "Start an agent"),
        Binding("q,escape", "app.quit", "Quit"),
    ]

    def __init__(self, reason: str | None) -> None:
        super().__init__()
        self._reason = reason

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]No agent is running on this machine.[/b]")
            yield Label(plain(self._reason or ""), id="reason", classes="dim")
            yield Label(
                "Start one in the background now? It keeps running after you quit; "
                "'training-agent drain' or Ctrl-C in its terminal stops it."
            )
            with Horizontal():
                yield Button("Start an agent (s)", id="start", variant="primary")
                yield Button("Quit (q)", id="quit")

    def show_reason(self, reason: str | None) -> None:
        self.query_one("#reason", Label).update(plain(reason or ""))

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        await self.app.run_action("start_agent" if event.button.id == "start" else "quit")
