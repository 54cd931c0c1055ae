"""Follow a trainer's events file and turn each JSON line into reports.

The trainer appends one JSON object per line (``training_agent.report`` writes them):

    {"type": "metric", "step": 12, "epoch": 0.5, "train_loss": 1.7, ...}  -> sink.metric
    {"type": "progress", "total_steps": 400, "total_epochs": 2}           -> sink.progress
    {"type": "checkpoint", "step": 200, "path": "ckpt-200"}               -> log + outputs
    {"type": "output", "path": "model.json", "kind": "model", "name": "m"} -> log + outputs
    {"type": "capabilities", "pause": true}                                -> capabilities
    {"type": "paused"} / {"type": "resumed"}                               -> on_state

A metric needs an integer ``step`` >= 1 and a numeric ``epoch``; it keeps only finite
numbers under the backend's key names (``eval_perplexity`` is sent as ``perplexity``),
plus the bounded ``extra`` series (``training_agent.reporting.extra``).
An output's ``kind`` is ``adapter``, ``model``, ``checkpoint`` or ``file`` (the default;
an unknown kind is noted and taken as ``file``); a checkpoint is an output of kind
``checkpoint``. What cannot be used is skipped with one job log line saying why; unknown
types are ignored so trainers can write events a newer agent understands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from training_agent.jobs import JobOutput, JobSink, OutputKind
from training_agent.reporting import extra

log = logging.getLogger(__name__)

METRIC_KEYS = frozenset(
    {
        "train_loss",
        "eval_loss",
        "learning_rate",
        "grad_norm",
        "perplexity",
        "train_perplexity",
        "samples_per_second",
        "tokens_per_second",
        "gpu_memory_allocated_gb",
        "gpu_memory_reserved_gb",
        "gpu_utilization_percent",
    }
)
RENAMED_KEYS = {"eval_perplexity": "perplexity"}
POLL_INTERVAL_S = 0.2
MAX_EVENT_LINE_BYTES = 1024 * 1024
# A trainer that writes garbage every step must not bury its own log in our notes.
MAX_SKIP_NOTES = 20


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


class EventReader:
    """Turns events lines into sink calls and remembers the reported outputs.

    ``capabilities`` holds what the trainer declared (``{"pause": True}``); ``on_state``
    is called with ``"paused"`` or ``"resumed"`` when the trainer says it did so.
    """

    def __init__(
        self,
        sink: JobSink,
        *,
        base_dir: Path,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self._sink = sink
        self._base_dir = base_dir
        self._on_state = on_state
        self._outputs: dict[str, JobOutput] = {}
        self._notes = 0
        self._capabilities: dict[str, bool] = {}

    @property
    def capabilities(self) -> Mapping[str, bool]:
        return self._capabilities

    @property
    def outputs(self) -> tuple[str, ...]:
        """Checkpoint and output paths in the order reported, relative ones made absolute."""
        return tuple(self._outputs)

    @property
    def declared(self) -> tuple[JobOutput, ...]:
        """The same outputs with their kind and name (a path declared twice: the last)."""
        return tuple(self._outputs.values())

    def handle(self, line_no: int, raw: bytes) -> None:
        """Handle line ``line_no`` (1-based) of the events file."""
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            self.skip(f"events line {line_no} is not valid JSON, skipped: {exc}")
            return
        if not isinstance(event, dict):
            self.skip(f"events line {line_no} is not a JSON object, skipped")
            return
        kind = event.get("type")
        if kind == "metric":
            self._metric(line_no, event)
        elif kind == "progress":
            self._progress(line_no, event)
        elif kind in ("checkpoint", "output"):
            self._path_event(line_no, kind, event)
        elif kind == "capabilities":
            self._capabilities.update(
                {name: value for name, value in event.items() if isinstance(value, bool)}
            )
        elif kind in ("paused", "resumed") and self._on_state is not None:
            self._on_state(kind)

    def skip(self, note: str) -> None:
        """Tell the job log why something was skipped, up to ``MAX_SKIP_NOTES`` times."""
        self._notes += 1
        if self._notes < MAX_SKIP_NOTES:
            self._sink.log(note)
        elif self._notes == MAX_SKIP_NOTES:
            self._sink.log(f"{note} (further skipped events are not reported)")

    def _metric(self, line_no: int, event: dict[str, Any]) -> None:
        step, epoch = event.get("step"), event.get("epoch")
        where = f"events line {line_no}: metric skipped"
        if not _is_int(step) or step < 1:
            self.skip(f"{where}: step must be an integer >= 1, got {step!r}")
            return
        if not _is_number(epoch) or epoch < 0:
            self.skip(f"{where}: epoch must be a number >= 0, got {epoch!r}")
            return
        point: dict[str, Any] = {"step": step, "epoch": float(epoch)}
        renamed = [
            (RENAMED_KEYS[key], value) for key, value in event.items() if key in RENAMED_KEYS
        ]
        for key, value in [*event.items(), *renamed]:
            if key not in METRIC_KEYS or key in point:
                continue
            if _is_number(value):
                point[key] = float(value)
            elif isinstance(value, float):
                self.skip(f"events line {line_no}: {key} is {value}, not reported")
        if series := extra.clean(event.get("extra")):
            point["extra"] = series
        self._sink.metric(point)

    def _progress(self, line_no: int, event: dict[str, Any]) -> None:
        steps, epochs = event.get("total_steps"), event.get("total_epochs")
        total_steps = steps if _is_int(steps) and steps >= 1 else None
        total_epochs = float(epochs) if _is_number(epochs) and epochs > 0 else None
        if total_steps is None and total_epochs is None:
            self.skip(
                f"events line {line_no}: progress skipped: needs total_steps "
                "(an integer >= 1) or total_epochs (a number > 0)"
            )
            return
        self._sink.progress(total_steps=total_steps, total_epochs=total_epochs)

    def _path_event(self, line_no: int, kind: str, event: dict[str, Any]) -> None:
        path = event.get("path")
        if not isinstance(path, str) or not path:
            self.skip(f"events line {line_no}: {kind} skipped: path must be a non-empty string")
            return
        full = str(self._base_dir / path)  # an absolute path replaces the base
        step = event.get("step")
        at_step = f" at step {step}" if _is_int(step) else ""
        self._sink.log(f"{kind} saved{at_step}: {full}")
        output_kind = OutputKind.CHECKPOINT if kind == "checkpoint" else self._kind(line_no, event)
        name = event.get("name")
        name = name if isinstance(name, str) and name.strip() else None
        self._outputs[full] = JobOutput(full, output_kind, name)

    def _kind(self, line_no: int, event: dict[str, Any]) -> OutputKind:
        kind = event.get("kind", OutputKind.FILE.value)
        try:
            return OutputKind(kind)
        except ValueError:
            known = ", ".join(item.value for item in OutputKind)
            self.skip(
                f"events line {line_no}: output kind {kind!r} is not one of {known}; taken as file"
            )
            return OutputKind.FILE


class EventFollower:
    """Reads the lines appended to an events file; ``read_new()`` is one step."""

    def __init__(
        self,
        path: Path,
        reader: EventReader,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._path = path
        self._reader = reader
        self._poll_interval_s = poll_interval_s
        self._sleep = sleep
        self._offset = 0
        self._partial = b""
        self._discarding = False
        self._line_no = 0

    async def follow(self) -> None:
        """Read new lines every ``poll_interval_s`` until cancelled."""
        while True:
            try:
                self.read_new()
            except Exception:
                # Losing some events is better than losing the job: keep following.
                log.exception("reading events from %s failed", self._path)
            await self._sleep(self._poll_interval_s)

    def read_new(self, *, final: bool = False) -> None:
        """Handle every complete line appended since the last call.

        ``final`` (after the trainer exited) also handles a last line without newline.
        """
        data = self._read_appended()
        *lines, self._partial = (self._partial + data).split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            self._line_no += 1
            if self._discarding:
                self._discarding = False  # this newline ends the oversized line
            elif raw.strip():
                self._reader.handle(self._line_no, raw)
        if len(self._partial) > MAX_EVENT_LINE_BYTES:
            if not self._discarding:
                self._reader.skip(f"events line {self._line_no + 1} is longer than 1 MiB, skipped")
            self._partial, self._discarding = b"", True

    def _read_appended(self) -> bytes:
        try:
            with self._path.open("rb") as events:
                events.seek(self._offset)
                data = events.read()
        except OSError:
            return b""  # not written yet, or removed by the trainer: nothing to read
        self._offset += len(data)
        return data
