"""``reward``: a reward model trained on preference rows with ``trl.RewardTrainer``.

The model is ``model.name`` with a one-output score head (``AutoModelForSequenceClassification``,
``num_labels=1``; a new head starts random), trained so that ``chosen`` scores above
``rejected`` (Bradley-Terry loss). Its output is what an ``rlhf`` job names in
``training.reward_model``. With LoRA the score head is trained in full next to the adapter.
"""

from __future__ import annotations

from typing import Any

from training_agent.trainers import hf_args, hf_model
from training_agent.trainers.methods import Job


def build(job: Job) -> Any:
    from datasets import Dataset
    from trl.trainer.reward_config import RewardConfig
    from trl.trainer.reward_trainer import RewardTrainer

    train_set = Dataset.from_list(job.train_rows)
    eval_set = Dataset.from_list(job.eval_rows) if job.eval_rows else None
    arguments = hf_args.common(
        job.settings,
        job.job_dir,
        bf16=job.bf16,
        fp16=job.fp16,
        cuda=job.cuda,
        has_eval=eval_set is not None,
    )
    model = hf_model.sequence_scorer(job.settings, job.cuda, job.tokenizer.pad_token_id)
    return RewardTrainer(
        model=model,
        args=RewardConfig(**arguments, max_length=job.settings.max_length),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=job.tokenizer,
        callbacks=job.callbacks,
    )
