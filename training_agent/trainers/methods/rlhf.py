"""``rlhf``: a policy trained against a reward model, with TRL's RLOO trainer.

The platform names PPO for this method; TRL 1.x no longer ships a PPO trainer (it left
in 0.29), and RLOO (REINFORCE leave-one-out, "Back to Basics", Ahmadian et al. 2024) is
the RLHF algorithm TRL keeps for exactly this setup: a learned reward model scores
sampled completions, and each completion's advantage is its reward minus the mean of the
other completions of the same prompt. It needs no value model, so it holds one model
less than PPO in memory, and it matched or beat PPO in that paper. GRPO would work as
well; RLOO's leave-one-out baseline is unbiased, which is why it is the choice here.

The platform's PPO keys map where they mean the same: ``ppo_epochs`` -> optimisation
passes per batch (``num_iterations``), ``clip_range`` -> ``epsilon``, ``beta`` -> the KL
coefficient; the value-model keys (``vf_coef``, ``clip_range_value``) and
``entropy_coef`` have no counterpart and are logged as ignored.
"""

from __future__ import annotations

from typing import Any

from training_agent.trainers import hf_args, hf_model
from training_agent.trainers.methods import Job, MethodError
from training_agent.trainers.methods.prompts import cap_prompts


def build(job: Job) -> Any:
    from datasets import Dataset
    from trl.trainer.rloo_config import RLOOConfig
    from trl.trainer.rloo_trainer import RLOOTrainer

    settings, options = job.settings, job.settings.options
    assert options.reward_model is not None  # options.parse_options refuses rlhf without it
    generations = num_generations(
        settings.batch_size * settings.gradient_accumulation_steps, options.num_generations
    )
    scorer = hf_model.frozen_scorer(options.reward_model, settings, job.cuda)
    reward_tokenizer = hf_model.tokenizer(settings, name=options.reward_model)
    if scorer.config.pad_token_id is None:
        scorer.config.pad_token_id = reward_tokenizer.pad_token_id
    half = max(settings.max_length // 2, 1)
    limit = options.max_prompt_length or half
    train_set = Dataset.from_list(cap_prompts(job.train_rows, job.tokenizer, limit))
    eval_set = (
        Dataset.from_list(cap_prompts(job.eval_rows, job.tokenizer, limit))
        if job.eval_rows
        else None
    )
    arguments = hf_args.common(
        settings,
        job.job_dir,
        bf16=job.bf16,
        fp16=job.fp16,
        cuda=job.cuda,
        has_eval=eval_set is not None,
    )
    arguments.update(
        num_generations=generations,
        max_completion_length=options.max_completion_length or half,
        beta=options.beta,
        num_iterations=options.ppo_epochs,
        epsilon=options.clip_range,
        temperature=options.temperature,
    )
    return RLOOTrainer(
        model=hf_model.causal_lm(settings, job.cuda),
        reward_funcs=scorer,
        args=RLOOConfig(**arguments),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=job.tokenizer,
        reward_processing_classes=reward_tokenizer,
        callbacks=job.callbacks,
    )


def num_generations(batch: int, asked: int | None) -> int:
    """Completions per prompt: ``asked``, or the first of 4, 3, 2, ``batch`` that divides it."""
    if asked is not None:
        if batch % asked:
            raise MethodError(
                f"method rlhf samples training.num_generations ({asked}) completions per "
                f"prompt, which must divide batch_size x gradient_accumulation_steps ({batch}); "
                "change one of them"
            )
        return asked
    for candidate in (4, 3, 2, batch):
        if candidate >= 2 and batch % candidate == 0:
            return candidate
    raise MethodError(
        f"method rlhf compares at least 2 completions per prompt, and batch_size x "
        f"gradient_accumulation_steps is {batch}; set training.batch_size to 2 or more"
    )
