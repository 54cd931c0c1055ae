"""Turn a child's output bytes into log lines.

Bytes are decoded as UTF-8 (invalid bytes become U+FFFD), split on ``\\n``, and each
line that carries ``\\r`` progress redraws keeps only its last non-blank segment, so a
progress bar becomes the one line a terminal would show at the end. A run of output
with no newline is cut into chunks of at most ``max_line_chars``, so one runaway line
can neither exhaust memory nor stall the log; longer lines are cut the same way.

    >>> splitter = LineSplitter()
    >>> splitter.feed(b"epoch 1\\n10%\\r50%\\r100%\\nhal")
    ['epoch 1', '100%']
    >>> splitter.finish()
    ['hal']
"""

from __future__ import annotations

import codecs

MAX_LINE_CHARS = 16 * 1024


def collapse_redraws(line: str) -> str:
    """The last non-blank ``\\r`` segment of ``line`` (the line itself when it has no ``\\r``)."""
    if "\r" not in line:
        return line
    for segment in reversed(line.split("\r")):
        # A segment of spaces is a redraw that only clears the line: not what was shown.
        if segment.strip():
            return segment
    return ""


def _drop_finished_redraws(pending: str) -> str:
    """Forget redraws in an unfinished line that a later one already replaced.

    Keeps the last ``\\r`` that has text after it, so a bar that redraws for an hour
    without a newline costs one redraw of memory, not an hour of them.
    """
    cut = pending.rstrip("\r").rfind("\r")
    return pending[cut:] if cut > 0 else pending


class LineSplitter:
    """Incremental splitter: ``feed()`` bytes as they arrive, ``finish()`` at end of stream."""

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._max_line_chars = max_line_chars

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data``, in order."""
        *complete, pending = (self._pending + self._decoder.decode(data)).split("\n")
        lines = [chunk for line in complete for chunk in self._cut(collapse_redraws(line))]
        pending = _drop_finished_redraws(pending)
        while len(pending) > self._max_line_chars:
            lines.append(collapse_redraws(pending[: self._max_line_chars]))
            pending = pending[self._max_line_chars :]
        self._pending = pending
        return lines

    def _cut(self, line: str) -> list[str]:
        size = self._max_line_chars
        return [line[i : i + size] for i in range(0, len(line), size)] or [line]

    def finish(self) -> list[str]:
        """The last line when the stream did not end with a newline (else nothing)."""
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._cut(collapse_redraws(rest)) if rest else []
