"""``dpo``, ``orpo`` and ``kto``: preference training on TRL's trainers.

- ``dpo`` (``trl.DPOTrainer``): the reference is the frozen starting model; with LoRA it
  is the same model with the adapter switched off (no second copy in memory), in a full
  fine-tune TRL loads a second, frozen copy. ``beta`` is the strength of the pull
  towards it.
- ``orpo`` (``trl.experimental.orpo.ORPOTrainer``, where TRL 1.x keeps it): no reference
  model; ``beta`` weighs the odds-ratio term against the likelihood of ``chosen``.
- ``kto`` (``trl.KTOTrainer``): unpaired rows with a ``label``; ``desirable_weight`` and
  ``undesirable_weight`` balance the two kinds.

Each reads ``max_length`` (prompt and completion) and ``max_prompt_length`` (see
``prompts.py``).
"""

from __future__ import annotations

from typing import Any

from training_agent.trainers import hf_args, hf_model
from training_agent.trainers.methods import Job
from training_agent.trainers.methods.prompts import cap_prompts


def build(job: Job) -> Any:
    from datasets import Dataset

    options = job.settings.options
    limit = options.max_prompt_length
    train_set = Dataset.from_list(cap_prompts(job.train_rows, job.tokenizer, limit))
    eval_set = (
        Dataset.from_list(cap_prompts(job.eval_rows, job.tokenizer, limit))
        if job.eval_rows
        else None
    )
    arguments = hf_args.common(
        job.settings,
        job.job_dir,
        bf16=job.bf16,
        fp16=job.fp16,
        cuda=job.cuda,
        has_eval=eval_set is not None,
    )
    arguments.update(max_length=job.settings.max_length, beta=options.beta)
    if job.method == "orpo":  # its batches carry no input_ids for the Trainer to count
        arguments["include_num_input_tokens_seen"] = False
    trainer_class, config_class = _classes(job.method)
    if job.method == "kto":
        arguments.update(
            desirable_weight=options.desirable_weight,
            undesirable_weight=options.undesirable_weight,
        )
    return trainer_class(
        model=hf_model.causal_lm(job.settings, job.cuda),
        args=config_class(**arguments),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=job.tokenizer,
        callbacks=job.callbacks,
    )


def _classes(method: str) -> tuple[Any, Any]:
    if method == "dpo":
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        return DPOTrainer, DPOConfig
    if method == "kto":
        from trl.trainer.kto_config import KTOConfig
        from trl.trainer.kto_trainer import KTOTrainer

        return KTOTrainer, KTOConfig
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOTrainer, ORPOConfig
