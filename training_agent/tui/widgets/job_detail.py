"""The selected job's numbers: progress, epoch, elapsed and ETA, loss, throughput, LR.

7c1e4d2a  demo-model  running
████████████░░░░░░░░  60%
step 360/600  epoch 1.20/2
1m 02s elapsed, 41s left
loss 0.412  eval 0.455
812 samples/s  lr 2.0e-05
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from training_agent.tui.text import bar, duration, number, printable

BAR_WIDTH = 24


class JobDetail(Static):
    """Numbers of one job; a hint when there is none."""

    DEFAULT_CSS = """
    JobDetail { width: 32; padding: 0 1; }
    """

    def show(self, job: dict[str, Any] | None, *, elapsed_extra_s: float = 0.0) -> None:
        self.update(render_detail(job, elapsed_extra_s))


def render_detail(job: dict[str, Any] | None, elapsed_extra_s: float) -> Text:
    if job is None:
        return Text("No job yet.\nThe agent claims the next one\nsubmitted on the platform.", "dim")
    metrics = job.get("last_metrics") or {}
    running = job.get("finished_at") is None
    extra = elapsed_extra_s if running else 0.0
    progress = job.get("progress")
    lines = [
        Text(printable(f"{job['id'][:12]}  {job.get('model_name') or '-'}")[:30], "bold"),
        Text(bar(progress, BAR_WIDTH) + ("" if progress is None else f" {progress:4.0%}")),
        Text(_position(job)),
        Text(_timing(job, extra, running)),
        Text(f"loss {number(metrics.get('train_loss'))}  eval {number(metrics.get('eval_loss'))}"),
        Text(_speed(metrics)),
    ]
    if job.get("error"):
        first = str(job["error"]).strip().splitlines() or [""]
        lines.append(Text(printable(first[0])[:60], "red"))
    return Text("\n").join(lines)


def _position(job: dict[str, Any]) -> str:
    step = f"step {job.get('step') or 0}"
    if job.get("total_steps"):
        step += f"/{job['total_steps']}"
    if job.get("epoch") is not None:
        step += f"  epoch {job['epoch']:.2f}"
        if job.get("total_epochs"):
            step += f"/{job['total_epochs']:g}"
    return step


def _timing(job: dict[str, Any], extra: float, running: bool) -> str:
    text = f"{duration(float(job.get('elapsed_s') or 0.0) + extra)} elapsed"
    if running and job.get("eta_s") is not None:
        text += f", {duration(max(0.0, job['eta_s'] - extra))} left"
    elif not running:
        text += f", {printable(job.get('status'))}"
    return text


def _speed(metrics: dict[str, Any]) -> str:
    if isinstance(metrics.get("tokens_per_second"), int | float):
        speed = f"{metrics['tokens_per_second']:.0f} tok/s"
    else:
        speed = f"{number(metrics.get('samples_per_second'), '.1f')} samples/s"
    return f"{speed}  lr {number(metrics.get('learning_rate'), '.1e')}"
