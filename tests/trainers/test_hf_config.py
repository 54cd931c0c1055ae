"""The TrainingConfig mapping: the keys honoured, the ones reported as ignored, errors."""

from __future__ import annotations

from typing import Any

import pytest

from training_agent.trainers.hf_config import parse

BASE: dict[str, Any] = {
    "model": {"name": "m", "torch_dtype": "bfloat16", "device_map": "auto"},
    "tokenizer": {"name": "m"},
    "training": {
        "method": "sft",
        "num_epochs": 3,
        "batch_size": 2,
        "use_lora": True,
        "lora_config": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "task_type": "x"},
        "dataloader_num_workers": 2,
    },
    "data": {"max_samples": 10, "eval_split": 0.2, "strategy": "standard"},
    "dataset_path": "/d.jsonl",
    "provider": {"api_token": "secret"},
}


def test_the_platform_keys_are_read_not_the_reference_agents() -> None:
    settings, ignored = parse(BASE)
    assert (settings.num_epochs, settings.batch_size, settings.max_samples) == (3.0, 2, 10)
    assert settings.lora is not None and settings.lora.r == 4 and settings.lora.alpha == 8
    assert settings.lora.target_modules == ("q_proj",)
    assert settings.eval_split == 0.2
    assert ignored == [
        "data.strategy",
        "model.device_map",
        "provider",
        "training.dataloader_num_workers",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training": {"method": "ppo"}}, "training.method 'ppo' is not a method this trainer"),
        (
            {"training": {"use_lora": False, "quantization": {"load_in_4bit": True}}},
            "load_in_4bit trains a LoRA adapter on the frozen 4-bit model",
        ),
        ({"dataset_path": None}, "the config has no dataset_path"),
        ({"model": {}}, "model.name must be"),
        ({"training": {"batch_size": 0}}, "batch_size must be an integer of at least 1"),
        ({"training": {"num_epochs": "3"}}, "num_epochs must be a number"),
    ],
)
def test_bad_configs_fail_with_one_sentence(change: dict[str, Any], message: str) -> None:
    config = {**BASE, **change}
    with pytest.raises(ValueError, match=message):
        parse(config)
