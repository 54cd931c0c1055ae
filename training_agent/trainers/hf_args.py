"""The ``TrainingArguments`` every method shares, as keyword arguments.

Each method passes them to its own arguments class (``TrainingArguments`` for sft and
cpt, TRL's ``DPOConfig``, ``KTOConfig``... for the others) with its own keys added. TRL's
config classes change some defaults (bf16 on, gradient checkpointing on, logging every
10 steps); every one of those is set here explicitly, so a method trains with what the
job's config says, not with a library's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training_agent.trainers import hf_config


def common(
    settings: hf_config.HfSettings,
    job_dir: Path,
    *,
    bf16: bool,
    fp16: bool,
    cuda: bool,
    has_eval: bool,
) -> dict[str, Any]:
    """The shared keyword arguments for a run in ``job_dir``."""
    eval_strategy = "no"
    if has_eval:
        eval_strategy = "steps" if settings.eval_steps else "epoch"
    return {
        "output_dir": str(job_dir / "checkpoints"),
        "num_train_epochs": settings.num_epochs,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.eval_batch_size or settings.batch_size,
        "learning_rate": settings.learning_rate,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "warmup_steps": settings.warmup_steps or settings.warmup_ratio,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm,
        "optim": settings.optim,
        "bf16": bf16,
        "fp16": fp16,
        "activation_checkpointing": settings.gradient_checkpointing,
        "logging_steps": settings.logging_steps,
        "eval_strategy": eval_strategy,
        "eval_steps": settings.eval_steps,
        "save_strategy": "steps" if settings.save_steps else "no",
        "save_steps": settings.save_steps or 500,
        "save_total_limit": settings.save_total_limit,
        "seed": settings.seed,
        "use_cpu": not cuda,
        "report_to": "none",
        "disable_tqdm": True,
        "include_num_input_tokens_seen": True,
        "dataloader_num_workers": 0,
        # every weight that trains is used in every step; DDP need not search for others
        "ddp_find_unused_parameters": False,
    }
