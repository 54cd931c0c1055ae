"""A live line chart of the selected job's train and eval loss, drawn in braille.

Each character cell holds 2x4 dots, so a 48x6 area plots 96x24 points. The y axis is
shared by both series and labelled at its top and bottom; the x axis is the step.

Hand-drawn rather than textual-plotext: that wrapper targets an older Textual, and a
few dozen lines here give a deterministic, dependency-free rendering for snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

Series = Sequence[tuple[int, float]]
# Dot bit of (column 0-1, row 0-3) inside one braille cell (U+2800 + bits).
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
LABEL_WIDTH = 7
STYLES = ("cyan", "magenta")  # train, eval
NAMES = ("train", "eval")


class LossChart(Widget):
    """Train and eval loss over steps; say so when there is nothing to draw yet."""

    DEFAULT_CSS = """
    LossChart { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._series: tuple[Series, Series] = ((), ())

    def show(self, train: Series, eval_: Series) -> None:
        self._series = (train, eval_)
        self.refresh()

    def render(self) -> Text:
        return draw(self._series, self.size.width, self.size.height)


def draw(series: tuple[Series, Series], width: int, height: int) -> Text:
    """The chart as text of ``width`` x ``height`` cells (legend and axis included)."""
    points = [p for s in series for p in s]
    if not points or width < LABEL_WIDTH + 4 or height < 3:
        return Text("no loss reported yet", "dim")
    cols, rows = width - LABEL_WIDTH, height - 1
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    first, last = min(s for s, _ in points), max(s for s, _ in points)
    cells: dict[tuple[int, int], list[int]] = {}
    for index, one in enumerate(series):
        dots = [_dot(step, value, first, last, lo, hi, cols, rows) for step, value in one]
        for (x0, y0), (x1, y1) in zip(dots, dots[1:] or dots, strict=False):
            for x, y in _line(x0, y0, x1, y1):
                cell = cells.setdefault((x // 2, y // 4), [0, -1])
                cell[0] |= _DOT[y % 4][x % 2]
                cell[1] = index
    text = Text()
    for row in range(rows):
        label = _label(hi if row == 0 else lo if row == rows - 1 else None)
        text.append(label, "dim")
        for col in range(cols):
            bits, owner = cells.get((col, row), (0, -1))
            text.append(chr(0x2800 + bits) if bits else " ", STYLES[owner] if bits else "")
        text.append("\n")
    text.append(_footer(series, first, last, width))
    return text


def _dot(
    step: int, value: float, first: int, last: int, lo: float, hi: float, cols: int, rows: int
) -> tuple[int, int]:
    x = 0 if last == first else round((step - first) / (last - first) * (cols * 2 - 1))
    y = 0 if hi == lo else round((hi - value) / (hi - lo) * (rows * 4 - 1))
    return x, y


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots from (x0, y0) to (x1, y1) (Bresenham)."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err, dots = dx + dy, []
    while True:
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return dots
        doubled = 2 * err
        if doubled >= dy:
            err, x0 = err + dy, x0 + sx
        if doubled <= dx:
            err, y0 = err + dx, y0 + sy


def _label(value: float | None) -> str:
    return " " * LABEL_WIDTH if value is None else f"{value:>{LABEL_WIDTH - 1}.3g} "


def _footer(series: tuple[Series, Series], first: int, last: int, width: int) -> Text:
    text = Text(f"{'step':>{LABEL_WIDTH - 1}} {first}", "dim")
    for name, style, one in zip(NAMES, STYLES, series, strict=True):
        if one:
            text.append(f" ━{name} {one[-1][1]:.3g}", style)
    end = f"{last}"
    text.append(" " * max(1, width - len(text) - len(end)) + end, "dim")
    text.truncate(width)
    return text
