"""The demo trainer: a small but real training run, in pure standard-library Python.

It draws a seeded synthetic binary-classification dataset (two Gaussian clouds) and
fits a logistic regression to it by mini-batch SGD, reporting through
``training_agent.report`` exactly like a user's script would: ``progress`` once, a
``metric`` every step (``eval_loss`` too at each epoch's last step), the final weights
as an ``output``. The losses really fall. On SIGTERM it finishes the current step,
saves a checkpoint, reports it, and exits 143, as a trainer should on a cancel. It can
pause: it declares ``{"type": "capabilities", "pause": true}``, and when the agent asks
(SIGUSR1 plus the control file, see ``training_agent.report``) it stops between two
steps, reports ``paused``, and waits for ``resume`` (or SIGTERM).

    python -m training_agent.trainers.demo --config config.json

Config keys (all optional): ``samples`` (2000), ``features`` (8), ``epochs`` (3),
``batch_size`` (32), ``learning_rate`` (0.1), ``seed`` (0), ``eval_fraction`` (0.2),
``step_delay_s`` (0; a pause per step so a person can watch it run). An invalid config
prints one sentence on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from training_agent import report

EXIT_INVALID_CONFIG = 2
EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM
# Without SIGUSR1 (Windows) the control file is read this often; and while paused.
CONTROL_CHECK_S = 0.5

Sample = tuple[list[float], int]


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs; the defaults finish in well under a second."""

    samples: int = 2000
    features: int = 8
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 0.1
    seed: int = 0
    eval_fraction: float = 0.2
    step_delay_s: float = 0.0

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> DemoConfig:
        """Validate a job config; raises ``ValueError`` with one sentence."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(raw) - set(known) - {"type"})
        if unknown:
            raise ValueError(f"unknown demo config key {unknown[0]!r}; known: {', '.join(known)}")
        values = {name: raw[name] for name in known if name in raw}
        for name, value in values.items():
            wants_int = known[name] == "int"
            if isinstance(value, bool) or not isinstance(value, int if wants_int else int | float):
                raise ValueError(f"{name} must be {'an integer' if wants_int else 'a number'}")
        config = cls(**values)
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        checks = [
            (self.samples >= 10, "samples must be at least 10"),
            (1 <= self.features <= 1000, "features must be between 1 and 1000"),
            (1 <= self.epochs <= 1000, "epochs must be between 1 and 1000"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (0 < self.learning_rate <= 100, "learning_rate must be above 0 and at most 100"),
            (0 < self.eval_fraction < 1, "eval_fraction must be between 0 and 1"),
            (0 <= self.step_delay_s <= 60, "step_delay_s must be between 0 and 60"),
        ]
        for ok, sentence in checks:
            if not ok:
                raise ValueError(sentence)


def make_dataset(config: DemoConfig) -> tuple[list[Sample], list[Sample]]:
    """Seeded train and eval sets: class 1 around a random centre, class 0 around its mirror."""
    rng = random.Random(config.seed)
    centre = [rng.uniform(-1.0, 1.0) for _ in range(config.features)]
    data: list[Sample] = []
    for _ in range(config.samples):
        label = rng.randint(0, 1)
        sign = 1.0 if label else -1.0
        data.append(([rng.gauss(sign * c, 1.0) for c in centre], label))
    n_eval = max(1, round(config.samples * config.eval_fraction))
    return data[n_eval:], data[:n_eval]


class LogisticRegression:
    """Weights and bias of ``p(y=1|x) = sigmoid(w.x + b)``, trained by SGD."""

    def __init__(self, features: int) -> None:
        self.weights = [0.0] * features
        self.bias = 0.0

    def logit(self, x: Sequence[float]) -> float:
        return sum(w * v for w, v in zip(self.weights, x, strict=True)) + self.bias

    def loss(self, batch: Sequence[Sample]) -> float:
        """Mean binary cross-entropy, computed stably from the logits."""
        total = 0.0
        for x, y in batch:
            z = self.logit(x)
            total += max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))
        return total / len(batch)

    def accuracy(self, batch: Sequence[Sample]) -> float:
        return sum((self.logit(x) > 0) == bool(y) for x, y in batch) / len(batch)

    def sgd_step(self, batch: Sequence[Sample], learning_rate: float) -> tuple[float, float]:
        """One update on ``batch``; returns the batch loss before it and the gradient norm."""
        loss = self.loss(batch)
        grad_w = [0.0] * len(self.weights)
        grad_b = 0.0
        for x, y in batch:
            error = _sigmoid(self.logit(x)) - y
            grad_b += error / len(batch)
            for j, v in enumerate(x):
                grad_w[j] += error * v / len(batch)
        self.weights = [w - learning_rate * g for w, g in zip(self.weights, grad_w, strict=True)]
        self.bias -= learning_rate * grad_b
        return loss, math.sqrt(sum(g * g for g in grad_w) + grad_b * grad_b)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    return math.exp(z) / (1.0 + math.exp(z))


class Trainer:
    """The training loop; ``request_stop()`` (the SIGTERM handler) ends it after a step."""

    def __init__(self, config: DemoConfig, out_dir: Path) -> None:
        self.config = config
        self.out_dir = out_dir
        self.model = LogisticRegression(config.features)
        self.stop_requested = False
        self.control_pending = False
        self.step = 0
        self._last_point: dict[str, float] = {}
        self._control_checked = time.monotonic()

    def request_stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        self.stop_requested = True

    def control_signalled(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """The SIGUSR1 handler: the agent wrote a request to the control file."""
        self.control_pending = True

    def _honour_pause(self) -> None:
        """Between steps: pause when asked, until resumed or stopped."""
        due = time.monotonic() - self._control_checked >= CONTROL_CHECK_S
        if not (self.control_pending or due):
            return
        self.control_pending, self._control_checked = False, time.monotonic()
        if report.requested_action() != "pause":
            return
        report.paused()
        print(f"paused after step {self.step}", flush=True)
        while not self.stop_requested and report.requested_action() != "resume":
            time.sleep(CONTROL_CHECK_S / 5)
        if not self.stop_requested:
            report.resumed()
            print(f"resumed at step {self.step + 1}", flush=True)

    def run(self) -> int:
        """Train for every epoch, or until a stop request; return the exit code."""
        train, evaluation = make_dataset(self.config)
        batches = math.ceil(len(train) / self.config.batch_size)
        total_steps = batches * self.config.epochs
        report.capabilities(pause=True)
        report.progress(total_steps=total_steps, total_epochs=self.config.epochs)
        print(f"training on {len(train)} samples, {total_steps} steps", flush=True)
        rng = random.Random(self.config.seed + 1)
        for epoch in range(1, self.config.epochs + 1):
            rng.shuffle(train)
            for start in range(0, len(train), self.config.batch_size):
                self._honour_pause()
                if self.stop_requested:
                    return self._stop()
                self._train_step(train[start : start + self.config.batch_size], batches)
                if self.step % max(1, total_steps // 20) == 0:
                    self._print_step(total_steps, batches)
            self._end_epoch(epoch, evaluation)
        report.output(self._save("model.json"))
        return 0

    def _train_step(self, batch: Sequence[Sample], batches_per_epoch: int) -> None:
        started = time.perf_counter()
        loss, grad_norm = self.model.sgd_step(batch, self.config.learning_rate)
        time.sleep(self.config.step_delay_s)
        self.step += 1
        self._last_point = {
            "train_loss": loss,
            "learning_rate": self.config.learning_rate,
            "grad_norm": grad_norm,
            "samples_per_second": len(batch) / max(time.perf_counter() - started, 1e-9),
        }
        if self.step % batches_per_epoch:  # the epoch's last step waits for eval_loss
            report.metric(self.step, self.step / batches_per_epoch, **self._last_point)

    def _print_step(self, total_steps: int, batches_per_epoch: int) -> None:
        loss = self._last_point["train_loss"]
        epoch = self.step / batches_per_epoch
        print(f"step {self.step}/{total_steps} epoch {epoch:.2f} train_loss={loss:.4f}", flush=True)

    def _end_epoch(self, epoch: int, evaluation: Sequence[Sample]) -> None:
        eval_loss = self.model.loss(evaluation)
        accuracy = self.model.accuracy(evaluation)
        report.metric(self.step, float(epoch), **self._last_point, eval_loss=eval_loss)
        print(f"epoch {epoch}: eval_loss={eval_loss:.4f} accuracy={accuracy:.3f}", flush=True)

    def _stop(self) -> int:
        if self.step >= 1:
            report.checkpoint(self.step, self._save(f"checkpoint-{self.step}.json"))
            print(f"stopping: SIGTERM received, checkpoint after step {self.step}", flush=True)
        return EXIT_TERMINATED

    def _save(self, name: str) -> Path:
        """Write the model's state to ``name`` in the output dir."""
        path = self.out_dir / name
        state = {"weights": self.model.weights, "bias": self.model.bias, "step": self.step}
        path.write_text(json.dumps({**state, "config": asdict(self.config)}) + "\n")
        return path


def load_config(path: Path) -> DemoConfig:
    """Read and validate the config file; raises ``ValueError`` with one sentence."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the config file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"the config file {path} must hold a JSON object")
    return DemoConfig.from_mapping(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="The training-agent demo trainer.")
    parser.add_argument("--config", type=Path, required=True, help="the job's config.json")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ValueError as exc:
        print(f"demo trainer: invalid config: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    out_dir = Path(os.environ.get("TRAINING_AGENT_JOB_DIR") or args.config.parent)
    trainer = Trainer(config, out_dir)
    signal.signal(signal.SIGTERM, trainer.request_stop)
    if hasattr(signal, "SIGBREAK"):  # what CTRL_BREAK_EVENT raises on Windows
        signal.signal(signal.SIGBREAK, trainer.request_stop)
    if hasattr(signal, "SIGUSR1"):  # the agent's "read your control file"
        signal.signal(signal.SIGUSR1, trainer.control_signalled)
    return trainer.run()


if __name__ == "__main__":
    sys.exit(main())
