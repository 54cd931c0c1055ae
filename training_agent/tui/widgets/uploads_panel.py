"""Artifact uploads under way (and just settled): a line each, hidden when there are none.

job-1  final_adapter.tar  adapter  uploading 24.0 MiB of 64.0 MiB (38%)  91.3 MB/s  0s left
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from training_agent.status.text import upload_line

MAX_SHOWN = 3

_STYLES = {"failed": "red", "complete": "green", "waiting": "yellow"}


class UploadsPanel(Static):
    """The snapshot's ``uploads``; takes no room while nothing uploads."""

    DEFAULT_CSS = """
    UploadsPanel { height: auto; max-height: 4; padding: 0 1; border-top: solid $primary; }
    """

    def show(self, uploads: list[dict[str, Any]]) -> None:
        self.display = bool(uploads)
        if uploads:
            self.update(render_uploads(uploads))


def render_uploads(uploads: list[dict[str, Any]]) -> Text:
    """The newest ``MAX_SHOWN`` uploads, one line each, styled by state."""
    shown = uploads[-MAX_SHOWN:]
    return Text("\n").join(
        Text(upload_line(upload), _STYLES.get(str(upload.get("state")), "")) for upload in shown
    )
