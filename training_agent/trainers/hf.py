"""The built-in Hugging Face trainer: runs a FineTune Lab ``TrainingConfig``.

    python -m training_agent.trainers.hf --config <job_dir>/config.json

Runs only inside the trainer process; the daemon never imports this module's heavy
dependencies. Config keys: ``hf_config``; datasets: ``hf_data``; models: ``hf_model``;
the methods (sft, cpt, dpo, orpo, kto, reward, rlhf): ``methods``; events:
``hf_callback``. Exit codes: 0 done; 2 a config, dataset or model the user must fix (one
sentence on stderr); 3 no usable training runtime; 143 stopped by SIGTERM after saving a
checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from training_agent.job_policy import PolicyError
from training_agent.trainers import distributed, hf_config, hf_data, policy
from training_agent.trainers.hf_model import DeviceError, ModelLoadError
from training_agent.trainers.methods import MethodError
from training_agent.trainers.methods import rows as method_rows
from training_agent.trainers.methods.options import PPO_ONLY_KEYS

EXIT_INVALID = 2
EXIT_NO_RUNTIME = 3
EXIT_TERMINATED = 128 + 15
RUNTIME_MODULES = ("torch", "transformers", "datasets", "peft", "trl")
RUNTIME_MISSING = (
    "this Python ({python}) cannot import {module}, which the built-in Hugging Face "
    "trainer needs; run `training-agent runtime setup` on this machine (or install the "
    "agent with its train extra) and submit the job again"
)
OUT_OF_MEMORY = (
    "the GPU ran out of memory ({detail}); lower training.batch_size (now {batch_size}) "
    "or training.max_length (now {max_length}), turn on training.gradient_checkpointing, "
    "or train a LoRA adapter on a 4-bit model (training.use_lora with "
    "training.quantization.load_in_4bit)"
)
# Our defaults for the libraries: no usage pings from users' machines, no progress bars
# redrawn into the job log, and no notice on every run that ORPO lives in TRL's
# experimental package (the pin fixes its API). A value set in the environment wins.
QUIET_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_agent.trainers.hf")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for module in RUNTIME_MODULES:  # found, not imported: a launcher needs only torch
        if importlib.util.find_spec(module) is None:
            print(RUNTIME_MISSING.format(python=sys.executable, module=module), file=sys.stderr)
            return EXIT_NO_RUNTIME
    try:
        raw = json.loads(args.config.read_text(encoding="utf-8"))
        settings, ignored = hf_config.parse(raw)
    except (OSError, ValueError) as exc:
        print(f"invalid training config: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for key in ignored:
        print(_ignored_note(key, settings.method))
    job_dir = Path(os.environ.get("TRAINING_AGENT_JOB_DIR") or args.config.parent)
    try:  # the owner's policy, not the job config, says what may be read and run
        settings = policy.enforce(settings, job_dir)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    if settings.distributed and not distributed.is_rank():
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        try:
            ranks = distributed.processes(settings.distributed, gpus)
        except ValueError as exc:
            print(f"invalid training config: {exc}", file=sys.stderr)
            return EXIT_INVALID
        if ranks > 1:
            return distributed.launch(ranks, args.config.resolve(), job_dir)
    return run(settings, job_dir)


def run(settings: hf_config.HfSettings, job_dir: Path) -> int:
    """Train; the exit code, with one sentence on stderr for a failure the user can fix."""
    import torch

    try:
        return _train(settings, job_dir)
    except (hf_data.DatasetError, DeviceError, ModelLoadError, MethodError) as exc:
        message = str(exc)
    except torch.cuda.OutOfMemoryError as exc:
        detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else "CUDA"
        message = OUT_OF_MEMORY.format(
            detail=detail, batch_size=settings.batch_size, max_length=settings.max_length
        )
    print(message, file=sys.stderr)
    if distributed.is_rank():  # the launcher repeats it after torchrun's own report
        failure = job_dir / distributed.FAILURE_FILE
        with contextlib.suppress(FileExistsError), failure.open("x", encoding="utf-8") as out:
            out.write(message + "\n")
    return EXIT_INVALID


def _ignored_note(key: str, method: str) -> str:
    if key.removeprefix("training.") in PPO_ONLY_KEYS:
        return (
            f"config key {key} is a PPO value-model setting; rlhf trains with RLOO, which "
            "has no value model; ignored"
        )
    return f"config key {key} is not used by the built-in trainer; ignored"


def _train(settings: hf_config.HfSettings, job_dir: Path) -> int:
    import torch
    from transformers import set_seed

    from training_agent import report
    from training_agent.trainers import hf_model
    from training_agent.trainers.hf_callback import AgentCallback
    from training_agent.trainers.methods import Job, builder

    set_seed(settings.seed)
    cuda = torch.cuda.is_available()
    bf16, fp16 = hf_model.precision(settings, cuda)
    train_rows, eval_rows = _rows(settings, job_dir)
    source = settings.dataset_path
    train_rows = method_rows.check(settings.method, train_rows, source)
    if eval_rows:
        eval_rows = method_rows.check(settings.method, eval_rows, f"{source} (evaluation)")
    samples_per_step = settings.batch_size * settings.gradient_accumulation_steps
    callback = AgentCallback(samples_per_step, perplexity=settings.method in ("sft", "cpt"))
    job = Job(
        settings=settings,
        job_dir=job_dir,
        cuda=cuda,
        bf16=bf16,
        fp16=fp16,
        tokenizer=hf_model.tokenizer(settings),
        train_rows=train_rows,
        eval_rows=eval_rows,
        callbacks=[callback],
    )
    trainer = builder(settings.method)(job)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        callback.request_stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    trainer.train(resume_from_checkpoint=_resume_path(settings.checkpoint_resume, job_dir))
    if callback.stop_requested:
        print(f"stopped by SIGTERM at step {trainer.state.global_step} after a checkpoint")
        return EXIT_TERMINATED
    final = job_dir / ("final_adapter" if settings.lora else "final_model")
    trainer.save_model(str(final))  # every rank takes part; rank 0 writes
    if not trainer.is_world_process_zero():
        return 0
    job.tokenizer.save_pretrained(str(final))
    kind = "adapter" if settings.lora else "model"
    report.output(final, kind=kind)
    what = "LoRA adapter" if settings.lora else "model"
    print(f"saved the {settings.method} {what} to {final}")
    return 0


def _rows(
    settings: hf_config.HfSettings, job_dir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cache = Path(os.environ.get("TRAINING_AGENT_DATASET_CACHE") or job_dir / "datasets")
    path = hf_data.fetch(settings.dataset_path, cache)
    train_split = settings.train_split if isinstance(settings.train_split, str) else None
    rows = hf_data.read_all(hf_data.data_files(path, train_split))
    if settings.max_samples:
        rows = rows[: settings.max_samples]
    eval_rows: list[dict[str, Any]] = []
    if isinstance(settings.eval_split, str) and path.is_dir():
        eval_rows = hf_data.read_all(hf_data.data_files(path, settings.eval_split))
    elif isinstance(settings.eval_split, float):
        cut = max(1, int(len(rows) * settings.eval_split))
        rows, eval_rows = rows[:-cut], rows[-cut:]
    if not rows:
        raise hf_data.DatasetError(f"the dataset {settings.dataset_path} has no training rows")
    print(f"dataset: {len(rows)} training rows, {len(eval_rows)} evaluation rows")
    return rows, eval_rows


def _resume_path(value: str | None, job_dir: Path) -> str | None:
    if not value:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else job_dir / path)


if __name__ == "__main__":
    sys.exit(main())
