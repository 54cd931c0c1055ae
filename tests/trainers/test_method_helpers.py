"""The pieces the methods share: text blocks, prompt caps, completion groups, extra
series, and the sentence for a GPU that ran out of memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.trainers.conftest import training_config
from training_agent.job_policy import POLICY_ENV, JobPolicy
from training_agent.trainers import hf, hf_callback, hf_config, hf_model
from training_agent.trainers.methods import MethodError
from training_agent.trainers.methods.causal import text_blocks
from training_agent.trainers.methods.prompts import cap_prompts
from training_agent.trainers.methods.rlhf import num_generations


def test_text_blocks_never_drop_a_token() -> None:
    documents = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]
    packed = [b["input_ids"] for b in text_blocks(documents, 4, packing=True)]
    assert packed == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    unpacked = [b["input_ids"] for b in text_blocks(documents, 4, packing=False)]
    assert unpacked == [[1, 2, 3, 4], [5], [6, 7], [8, 9, 10]]
    assert all(b["labels"] == b["input_ids"] for b in text_blocks(documents, 4, packing=True))


def test_long_prompts_keep_their_end(tiny_model: Path) -> None:
    settings, _ = hf_config.parse(training_config(tiny_model, "d.jsonl"))
    tokenizer = hf_model.tokenizer(settings)
    rows = [
        {"prompt": "0123456789", "chosen": "a", "rejected": "b"},
        {"prompt": "abc", "chosen": "a", "rejected": "b"},
    ]
    assert [r["prompt"] for r in cap_prompts(rows, tokenizer, 4)] == ["6789", "abc"]
    assert cap_prompts(rows, tokenizer, None) is rows
    chat = {
        "prompt": [{"role": "user", "content": "x" * 40}],
        "completion": [{"role": "assistant", "content": "y"}],
        "label": True,
    }
    (capped,) = cap_prompts([chat], tokenizer, 16)
    assert capped == {"prompt": "x\n<|assistant|>\n", "completion": "y\n", "label": True}


@pytest.mark.parametrize(
    ("batch", "asked", "expected"),
    [(8, None, 4), (6, None, 3), (2, None, 2), (5, None, 5), (8, 2, 2)],
)
def test_completion_groups_fill_the_batch(batch: int, asked: int | None, expected: int) -> None:
    assert num_generations(batch, asked) == expected


def test_completion_groups_that_cannot_fill_the_batch_say_what_to_change() -> None:
    with pytest.raises(MethodError, match=r"num_generations \(3\) .* \(8\); change one of them"):
        num_generations(8, 3)
    with pytest.raises(MethodError, match=r"set training\.batch_size to 2 or more"):
        num_generations(1, None)


def test_extra_series_keep_what_a_person_watches_and_are_bounded() -> None:
    logs: dict[str, Any] = {
        "loss": 0.5,
        "grad_norm": 1.0,
        "rewards/margins": 0.25,
        "kl": float("nan"),
        "train_runtime": 3.0,
        "note": "text",
        "x" * 65: 1.0,
    }
    assert hf_callback.extra_series(logs) == {"rewards/margins": 0.25}
    many = {f"s{i}": float(i) for i in range(100)}
    assert len(hf_callback.extra_series(many)) == hf_callback.MAX_EXTRA


def test_out_of_memory_fails_with_what_to_lower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    def oom(settings: hf_config.HfSettings, job_dir: Path) -> int:
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8 GiB"
        )

    monkeypatch.setattr(hf, "_train", oom)
    monkeypatch.setenv(POLICY_ENV, JobPolicy(data_dirs=(str(tmp_path),)).to_env())
    monkeypatch.setenv("TRAINING_AGENT_JOB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the trainer runs in the job dir
    config = tmp_path / "config.json"
    config.write_text(json.dumps(training_config(tmp_path, "d.jsonl", batch_size=16)))
    assert hf.main(["--config", str(config)]) == hf.EXIT_INVALID
    assert capsys.readouterr().err.strip() == (
        "the GPU ran out of memory (CUDA out of memory); lower training.batch_size (now 16) "
        "or training.max_length (now 64), turn on training.gradient_checkpointing, or train "
        "a LoRA adapter on a 4-bit model (training.use_lora with "
        "training.quantization.load_in_4bit)"
    )
