"""Each training method trains a tiny random-weights model, and what it optimises moves
the way the method says, on a dataset built for it (tests/trainers/data)."""

from __future__ import annotations

import string
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.trainers.conftest import DATA, RunTrainer, series, training_config
from training_agent.trainers import tiny


def rises(values: list[float], by: float) -> bool:
    """The mean of the last quarter is ``by`` above the mean of the first quarter."""
    quarter = max(len(values) // 4, 1)
    first, last = values[:quarter], values[-quarter:]
    return sum(last) / len(last) - sum(first) / len(first) > by


def preference_config(model: Path, method: str, **training: object) -> dict[str, Any]:
    data = DATA / ("kto.jsonl" if method == "kto" else "preference.jsonl")
    return training_config(
        model, data, method=method, num_epochs=2, batch_size=8, learning_rate=0.01, **training
    )


def test_dpo_margins_rise_in_a_full_fine_tune(tiny_model: Path, train_here: RunTrainer) -> None:
    run = train_here(preference_config(tiny_model, "dpo", beta=0.1))
    assert run.returncode == 0, run.stderr
    margins = series(run, "rewards/margins")
    assert len(margins) == 8 and margins[0] == 0.0 and rises(margins, 0.5)
    assert series(run, "rewards/accuracies")[-1] == 1.0
    assert series(run, "train_loss")[-1] < series(run, "train_loss")[0] - 0.2
    assert all("train_perplexity" not in m for m in run.of("metric"))  # a DPO loss is no NLL
    assert (run.job_dir / "final_model" / "model.safetensors").exists()


def test_dpo_with_lora_saves_an_adapter(tiny_model: Path, train_here: RunTrainer) -> None:
    lora = {"r": 8, "target_modules": ["gate_proj", "up_proj", "down_proj"]}
    run = train_here(preference_config(tiny_model, "dpo", use_lora=True, lora_config=lora))
    assert run.returncode == 0, run.stderr
    assert rises(series(run, "rewards/margins"), 0.2), series(run, "rewards/margins")
    adapter = str(run.job_dir / "final_adapter")
    assert run.of("output") == [{"type": "output", "path": adapter, "kind": "adapter"}]


@pytest.mark.parametrize(("use_lora", "copies"), [(True, 0), (False, 1)])
def test_the_dpo_reference_is_the_adapter_free_base_with_lora(
    use_lora: bool, copies: int, tiny_model: Path, tmp_path: Path
) -> None:
    from training_agent.trainers import hf_config, hf_model
    from training_agent.trainers.methods import Job, builder, rows

    settings, _ = hf_config.parse(preference_config(tiny_model, "dpo", use_lora=use_lora))
    train_rows = rows.check("dpo", [{"prompt": "a", "chosen": "b", "rejected": "c"}], "x")
    job = Job(settings, tmp_path, False, False, False, hf_model.tokenizer(settings), train_rows, [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = builder("dpo")(job)
    assert (trainer.ref_model is not None) == bool(copies)


def test_orpo_raises_the_odds_of_chosen(tiny_model: Path, train_here: RunTrainer) -> None:
    run = train_here(preference_config(tiny_model, "orpo"))
    assert run.returncode == 0, run.stderr
    assert rises(series(run, "log_odds_ratio"), 0.2)
    assert rises(series(run, "rewards/margins"), 0.05)
    assert series(run, "nll_loss")[-1] < series(run, "nll_loss")[0]


def test_kto_separates_desirable_from_undesirable(tiny_model: Path, train_here: RunTrainer) -> None:
    run = train_here(preference_config(tiny_model, "kto", desirable_weight=1.0))
    assert run.returncode == 0, run.stderr
    assert rises(series(run, "rewards/margins"), 0.5)
    assert series(run, "kl")


def test_reward_model_learns_to_rank_chosen_first(tiny_model: Path, train_here: RunTrainer) -> None:
    run = train_here(preference_config(tiny_model, "reward"))
    assert run.returncode == 0, run.stderr
    assert series(run, "accuracy")[-1] == 1.0 and rises(series(run, "margin"), 0.5)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    final = run.job_dir / "final_model"
    scorer = AutoModelForSequenceClassification.from_pretrained(str(final))
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    with torch.no_grad():
        yes, no = (
            scorer(**tokenizer(f"Is a pear a fruit? {answer}", return_tensors="pt")).logits.item()
            for answer in ("yes", "no")
        )
    assert yes > no


def test_cpt_trains_on_every_token_of_plain_text(tiny_model: Path, train_here: RunTrainer) -> None:
    text = (DATA / "orchard.txt").read_text()
    run = train_here(training_config(tiny_model, DATA / "orchard.txt", method="cpt", max_length=64))
    assert run.returncode == 0, run.stderr
    tokens = len(text) + 1  # one token per character, and EOS
    blocks = -(-tokens // 64)
    assert f"cpt: 1 documents, {tokens} tokens in {blocks} blocks" in run.stdout
    assert "(packed)" in run.stdout  # packing is on by default for cpt
    losses = series(run, "train_loss")
    assert len(losses) == -(-blocks // 4) and losses[-1] < losses[0] - 0.3


def test_rlhf_policy_earns_more_reward(
    tiny_model: Path, train_here: RunTrainer, tmp_path: Path
) -> None:
    scorer = tiny.build_scorer(tmp_path / "scorer", liked=string.ascii_lowercase)
    config = training_config(
        tiny_model,
        DATA / "prompts.jsonl",
        method="rlhf",
        num_epochs=3,
        batch_size=16,
        learning_rate=0.02,
        reward_model=str(scorer),
        max_completion_length=1,
        ppo_epochs=2,
    )
    run = train_here(config)
    assert run.returncode == 0, run.stderr
    rewards = series(run, "reward")
    assert len(rewards) == 12 and rises(rewards, 0.8), rewards
    assert series(run, "kl")[-1] > 0  # the policy moved away from where it started
    assert (run.job_dir / "final_model" / "model.safetensors").exists()


def test_chat_rows_with_the_prompt_inside_train_and_long_prompts_are_cut(
    tiny_model: Path, train_here: RunTrainer
) -> None:
    config = training_config(
        tiny_model, DATA / "preference_chat.jsonl", method="dpo", max_prompt_length=8
    )
    run = train_here(config)
    assert run.returncode == 0, run.stderr
    assert "max_prompt_length: 8 of 8 prompts cut to their last 8 tokens" in run.stdout


@pytest.mark.parametrize("method", ["dpo", "orpo", "reward"])
def test_rows_that_do_not_fit_the_method_fail_at_once(
    method: str, tiny_model: Path, train_here: RunTrainer
) -> None:
    run = train_here(training_config(tiny_model, DATA / "kto.jsonl", method=method))
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"method {method} needs rows with columns prompt, chosen and rejected (prompt may "
        "be left out when chosen and rejected hold the whole conversation); the dataset "
        f"{DATA / 'kto.jsonl'} has columns ['completion', 'label', 'prompt']"
    )
    assert not run.of("progress")


def test_a_reward_model_that_does_not_load_fails_the_job(
    tiny_model: Path, train_here: RunTrainer, tmp_path: Path
) -> None:
    config = training_config(
        tiny_model, DATA / "prompts.jsonl", method="rlhf", reward_model=str(tmp_path / "nope")
    )
    run = train_here(config)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"the reward model {tmp_path / 'nope'} (training.reward_model) is not a directory on "
        "this machine; name the directory of a trained reward model (the output of a job "
        "with method reward) or its hub id"
    )


def test_a_reward_model_of_the_wrong_kind_fails_the_job(
    tiny_model: Path, train_here: RunTrainer, tmp_path: Path
) -> None:
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}")
    config = training_config(
        tiny_model, DATA / "prompts.jsonl", method="rlhf", reward_model=str(not_a_model)
    )
    run = train_here(config)
    assert run.returncode == 2
    message = run.stderr.strip()
    where = f"cannot load the reward model {not_a_model} (training.reward_model): "
    assert message.startswith(where)
    assert message.endswith("such as the output of a job with method reward")
    assert "\n" not in message
