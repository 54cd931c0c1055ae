"""Every key of the dashboard, read from the app's own bindings so it cannot go stale."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

MORE_KEYS = (
    ("↑ ↓ / click", "select a job (the chart, details and log follow it)"),
    ("Enter", "the selected job's full log (as l)"),
    ("PgUp PgDn", "scroll the log"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 72; height: auto; max-height: 100%; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, bindings: list[BindingType]) -> None:
        super().__init__()
        self._keys = [b for b in bindings if isinstance(b, Binding)]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        for binding in self._keys:
            table.add_row(_keys(binding.key), binding.description)
        for keys, description in MORE_KEYS:
            table.add_row(keys, description)
        with Vertical():
            yield Label("[b]Keys[/b]  (the mouse works too: click a row, a key in the footer)")
            yield Static(table, id="keys")
            yield Label("Quitting leaves the agent running. Esc closes this.", classes="dim")

    def action_close(self) -> None:
        self.dismiss(None)


def _keys(key: str) -> str:
    names = {"question_mark": "?", "enter": "Enter", "escape": "Esc", "f1": "F1"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in key.split(","))
