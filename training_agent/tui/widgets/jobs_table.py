"""Running jobs first, then recent ones: id, model, status, progress, step, time, ETA.

The highlighted row is the selected job (the chart, details and log follow it); moving
the cursor posts ``JobsTable.Selected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from training_agent.tui.text import bar, duration, plain, printable, short_id

COLUMNS = ("job", "model", "status", "progress", "step", "time", "left")
_STATUS_STYLE = {
    "running": "green",
    "cancelling": "yellow",
    "paused": "yellow",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}
BAR_WIDTH = 8


class JobsTable(DataTable[Any]):
    """One row per job; the cursor row is the selected job."""

    DEFAULT_CSS = """
    JobsTable { overflow-x: hidden; }
    """

    @dataclass
    class Selected(Message):
        """The highlighted job changed (None: no jobs)."""

        job_id: str | None

    @dataclass
    class Opened(Message):
        """Enter or a click on the highlighted row: open the job's log."""

        job_id: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._order: list[str] = []
        for name in COLUMNS:  # here, not at mount: the app may draw before that
            self.add_column(name, key=name)

    @property
    def selected(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def show(self, jobs: list[dict[str, Any]], *, elapsed_extra_s: float = 0.0) -> None:
        """Redraw the rows; the cursor stays on the same job."""
        order = [str(job["id"]) for job in jobs]
        before = self.selected
        if order != self._order:
            self.clear()
            for job in jobs:
                self.add_row(*_cells(job, elapsed_extra_s), key=str(job["id"]))
            self._order = order
            if before in order:
                self.move_cursor(row=order.index(before), animate=False)
        else:
            for job in jobs:
                for name, cell in zip(COLUMNS, _cells(job, elapsed_extra_s), strict=True):
                    self.update_cell(str(job["id"]), name, cell)
        if self.selected != before:
            self.post_message(self.Selected(self.selected))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(self.selected))

    def action_select_cursor(self) -> None:
        # Enter opens the job's log (a click only highlights, as moving the cursor does).
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))


def _first_line(text: str, width: int) -> str:
    line = printable(str(text).strip().splitlines()[0]) if str(text).strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _cells(job: dict[str, Any], elapsed_extra_s: float) -> tuple[Any, ...]:
    running = job.get("finished_at") is None
    step = "" if job.get("step") is None else str(job["step"])
    if job.get("total_steps"):
        step += f"/{job['total_steps']}"
    progress = job.get("progress")
    pct = "" if progress is None else f" {progress * 100:3.0f}%"
    elapsed = float(job.get("elapsed_s") or 0.0) + (elapsed_extra_s if running else 0.0)
    if running:
        eta = job.get("eta_s")
        left = "" if eta is None else duration(max(0.0, eta - elapsed_extra_s))
    else:
        left = _first_line(job["error"], 12) if job.get("error") else "-"
    status = str(job.get("status"))
    # A str cell would be read as markup by the table: every cell is a Text.
    return (
        plain(short_id(printable(job["id"]))),
        plain(printable(job.get("model_name") or "-")[:12]),
        plain(status, _STATUS_STYLE.get(status, "")),
        Text(bar(progress, BAR_WIDTH) + pct),
        plain(step),
        Text(duration(elapsed)),
        plain(left),
    )
