"""The ``TrainerCallback`` that turns a Hugging Face ``Trainer``'s run into agent events.

Runs inside the trainer process only (it imports transformers). It reports ``progress``
before the first step, one ``metric`` per log with the platform's names, a ``checkpoint``
per save, and stops the run with a checkpoint once ``stop_requested`` is set (SIGTERM).
It also pauses between steps when the agent asks (see ``training_agent.report``). In a
distributed run only rank 0 reports, and the ranks agree on stop and pause each step.

Every other number a trainer logs (TRL's ``rewards/margins``, ``logps/chosen``, ``kl``,
``reward``, ``accuracy``...) goes out as the point's ``extra`` series, up to
``MAX_EXTRA`` names; run bookkeeping (runtimes, FLOPs, ``epoch``) does not.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from training_agent import report

PAUSE_POLL_S = 0.5
# Keys of the Trainer's log dict and the platform's metric names.
_RENAMES = {"loss": "train_loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate"}
MAX_EXTRA = 48
MAX_EXTRA_NAME = 64
# Logged by the Trainer about the run, not the model: never a series on the chart.
_BOOKKEEPING = {
    "grad_norm",
    "epoch",
    "step",
    "total_flos",
    "step_time",
    "num_input_tokens_seen",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_tokens_per_second",
    "eval_runtime",
    "eval_samples_per_second",
    "eval_steps_per_second",
}


class AgentCallback(TrainerCallback):
    """Reports a Trainer's progress, metrics and checkpoints through ``training_agent.report``."""

    def __init__(self, samples_per_step: int, *, perplexity: bool = True) -> None:
        self.samples_per_step = samples_per_step
        # exp(loss) is a perplexity only when the loss is a language-modelling loss.
        self.perplexity = perplexity
        self.stop_requested = False
        self._last_time = time.monotonic()
        self._last_step = 0
        self._last_tokens = 0

    def request_stop(self) -> None:
        """Save a checkpoint at the end of the current step and end the run."""
        self.stop_requested = True

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.is_world_process_zero:  # with several ranks, rank 0 speaks for the run
            report.capabilities(pause=True)
            report.progress(total_steps=state.max_steps, total_epochs=args.num_train_epochs)
        self._last_time = time.monotonic()
        self._last_step = state.global_step
        self._last_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        asked = report.requested_action() == "pause"
        stop, pause = _agree(args, self.stop_requested, asked)
        if pause and not stop:
            if state.is_world_process_zero:
                report.paused()
            while not self.stop_requested and report.requested_action() != "resume":
                time.sleep(PAUSE_POLL_S)
            if state.is_world_process_zero and not self.stop_requested:
                report.resumed()
            self._last_time = time.monotonic()
            stop = _agree(args, self.stop_requested, False)[0]
        if stop:
            self.stop_requested = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        if not logs or "train_loss" in logs or state.global_step < 1:
            return  # the end-of-run summary repeats an average, not a step
        if not state.is_world_process_zero:
            return
        values = {_RENAMES[k]: float(v) for k, v in logs.items() if k in _RENAMES}
        if "grad_norm" in logs and math.isfinite(float(logs["grad_norm"])):
            values["grad_norm"] = float(logs["grad_norm"])
        if "train_loss" in values:
            if self.perplexity:
                values["train_perplexity"] = _perplexity(values["train_loss"])
            values.update(self._throughput(state))
        if "eval_loss" in values and self.perplexity:
            values["perplexity"] = _perplexity(values["eval_loss"])
        values.update(_gpu_metrics())
        extra = extra_series(logs)
        if values or extra:
            epoch = float(state.epoch or 0.0)
            report.metric(state.global_step, epoch=epoch, extra=extra, **values)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.is_world_process_zero:
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            report.checkpoint(max(state.global_step, 1), path)

    def _throughput(self, state: TrainerState) -> dict[str, float]:
        now = time.monotonic()
        elapsed = now - self._last_time
        steps = state.global_step - self._last_step
        tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        result: dict[str, float] = {}
        if elapsed > 0 and steps > 0:
            result["samples_per_second"] = steps * self.samples_per_step / elapsed
            if tokens > self._last_tokens:
                result["tokens_per_second"] = (tokens - self._last_tokens) / elapsed
        self._last_time, self._last_step, self._last_tokens = now, state.global_step, tokens
        return result


def _agree(args: TrainingArguments, stop: bool, pause: bool) -> tuple[bool, bool]:
    """``(stop, pause)`` as every rank will act on them: true when any rank says so.

    Ranks of a distributed run must stop or pause at the same step (the next step's
    gradient all-reduce would wait forever for a rank that left); one tiny all-reduce
    per step settles it. A single process decides alone.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return stop, pause
    flags = torch.tensor([int(stop), int(pause)], device=args.device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags[0]), bool(flags[1])


def extra_series(logs: dict[str, float]) -> dict[str, float]:
    """The logged numbers beyond the platform's keys, in the order logged, bounded."""
    extra: dict[str, float] = {}
    for name, value in logs.items():
        if name in _RENAMES or name in _BOOKKEEPING or len(name) > MAX_EXTRA_NAME:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)) and len(extra) < MAX_EXTRA:
            extra[name] = float(value)
    return extra


def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def _gpu_metrics() -> dict[str, float]:
    """Memory of every visible GPU (summed) and NVML utilization (mean), when CUDA exists."""
    if not torch.cuda.is_available():
        return {}
    count = torch.cuda.device_count()
    gib = float(1 << 30)
    result = {
        "gpu_memory_allocated_gb": sum(torch.cuda.memory_allocated(i) for i in range(count)) / gib,
        "gpu_memory_reserved_gb": sum(torch.cuda.memory_reserved(i) for i in range(count)) / gib,
    }
    try:
        utilization = [float(torch.cuda.utilization(i)) for i in range(count)]
    except Exception:  # no NVML on this machine: memory only
        return result
    result["gpu_utilization_percent"] = sum(utilization) / max(len(utilization), 1)
    return result
