"""The GPU paths of the Hugging Face trainer: bf16, 4-bit loading, per-GPU metrics.

The ``gpu`` tests run where torch sees CUDA (tests/trainers/conftest.py deselects them
elsewhere); the aggregation over several GPUs is also checked on any machine with a
stand-in for ``torch.cuda``.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

from tests.trainers.conftest import DATA, RunTrainer, chat_rows, training_config
from training_agent.trainers import tiny

GPU_METRICS = ("gpu_memory_allocated_gb", "gpu_memory_reserved_gb", "gpu_utilization_percent")


def write_chat(path: Path, count: int) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in chat_rows(count)), encoding="utf-8")
    return path


def test_metrics_cover_every_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from training_agent.trainers import hf_callback

    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda i: (i + 1) * gib)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i: (i + 2) * gib)
    monkeypatch.setattr(torch.cuda, "utilization", lambda i: [40, 80][i])
    assert hf_callback._gpu_metrics() == {
        "gpu_memory_allocated_gb": 3.0,
        "gpu_memory_reserved_gb": 5.0,
        "gpu_utilization_percent": 60.0,
    }

    def no_nvml(_index: int) -> int:
        raise RuntimeError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    assert "gpu_utilization_percent" not in hf_callback._gpu_metrics()


@pytest.mark.gpu
def test_bf16_trains_on_the_gpu_and_reports_gpu_metrics(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    import torch

    data = write_chat(tmp_path / "chat.jsonl", 16)
    run = run_trainer(training_config(tiny_model, data, bf16=True))
    assert run.returncode == 0, run.stderr
    fell_back = "bf16 is not supported on this device" in run.stdout
    assert fell_back == (not torch.cuda.is_bf16_supported())
    train = [m for m in run.of("metric") if "train_loss" in m]
    assert train and all(name in train[-1] for name in GPU_METRICS[:2])
    assert train[-1]["gpu_memory_allocated_gb"] > 0


@pytest.mark.gpu
def test_four_bit_lora_trains_and_saves_an_adapter(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    pytest.importorskip("bitsandbytes", reason="runtime setup installs it on CUDA machines")
    data = write_chat(tmp_path / "chat.jsonl", 16)
    quantization = {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float16"}
    config = training_config(
        tiny_model, data, use_lora=True, lora_config={"r": 4}, quantization=quantization
    )
    run = run_trainer(config)
    assert run.returncode == 0, run.stderr
    assert (run.job_dir / "final_adapter" / "adapter_config.json").exists()


@pytest.mark.gpu
def test_every_visible_gpu_is_measured(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    import torch

    data = write_chat(tmp_path / "chat.jsonl", 16)
    run = run_trainer(training_config(tiny_model, data))
    assert run.returncode == 0, run.stderr
    last = [m for m in run.of("metric") if "train_loss" in m][-1]
    reserved = sum(torch.cuda.mem_get_info(i)[1] for i in range(torch.cuda.device_count()))
    assert 0 < last["gpu_memory_reserved_gb"] <= reserved / (1 << 30)
    assert 0 <= last.get("gpu_utilization_percent", 0) <= 100


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["cpt", "dpo", "orpo", "kto", "reward", "rlhf"])
def test_every_method_trains_in_bf16_on_the_gpu(
    method: str, tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = {"cpt": "orchard.txt", "kto": "kto.jsonl", "rlhf": "prompts.jsonl"}
    training: dict[str, object] = {"method": method, "bf16": True, "use_lora": True}
    if method == "rlhf":
        scorer = tiny.build_scorer(tmp_path / "scorer", liked=string.ascii_lowercase)
        training |= {"reward_model": str(scorer), "max_completion_length": 4}
    config = training_config(tiny_model, DATA / data.get(method, "preference.jsonl"), **training)
    run = train_here(config)
    assert run.returncode == 0, run.stderr
    last = run.of("metric")[-1]
    assert last["gpu_memory_allocated_gb"] > 0
