"""The last lines of the selected job's log, following as they come."""

from __future__ import annotations

from textual.widgets import RichLog

from training_agent.tui.model import JobLog
from training_agent.tui.text import plain

SHOWN_LINES = 500  # the full log screen (l) shows all the agent keeps


class LogTail(RichLog):
    """Shows one job's ``JobLog``; ``show`` writes only lines it has not shown yet."""

    DEFAULT_CSS = """
    LogTail { width: 1fr; height: 1fr; min-height: 3; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=SHOWN_LINES, wrap=False, markup=False, **kwargs)  # type: ignore[arg-type]
        self._job_id: str | None = None
        self._shown = 0  # number of the next line to write

    def show(self, job_id: str | None, log: JobLog | None) -> None:
        if job_id != self._job_id:
            self.clear()
            self._job_id, self._shown = job_id, 0
        if log is None:
            return
        first = log.total - len(log.lines)
        start = max(self._shown, first, log.total - SHOWN_LINES)
        for number in range(start, log.total):
            self.write(plain(log.lines[number - first]))
        self._shown = log.total
