"""The Hugging Face trainer run as the agent runs it: a process with an events file.

What only the training decides (step counts, packing, adapters, checkpoints, a resume) is
checked in this process (``train_here``: the same ``hf.run`` without an interpreter start);
the process itself (exit codes, sentences, events, SIGTERM) in real trainer processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from tests.trainers.conftest import (
    RunTrainer,
    chat_rows,
    read_events,
    start_trainer,
    training_config,
)


def write_chat(path: Path, count: int) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in chat_rows(count)), encoding="utf-8")
    return path


def test_loss_falls_and_every_metric_is_reported(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 88)
    config = training_config(tiny_model, data, num_epochs=3, batch_size=8, eval_steps=10)
    config["data"] = {"eval_split": 0.1}
    run = run_trainer(config)
    assert run.returncode == 0, run.stderr
    progress, metrics = run.of("progress"), run.of("metric")
    assert progress == [{"type": "progress", "total_steps": 30, "total_epochs": 3.0}]
    assert run.events.index(progress[0]) < run.events.index(metrics[0])
    train = [m for m in metrics if "train_loss" in m]
    assert [m["step"] for m in train] == list(range(1, 31))
    assert train[-1]["train_loss"] < train[0]["train_loss"] - 1.0
    assert 0 < train[0]["epoch"] < 1 and train[-1]["epoch"] == 3.0
    for name in ("learning_rate", "grad_norm", "train_perplexity", "samples_per_second"):
        assert all(name in m for m in train[1:]), name
    assert any("tokens_per_second" in m for m in train)
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in evals] == [10, 20, 30] and all("perplexity" in m for m in evals)
    final = str(run.job_dir / "final_model")
    assert run.of("output") == [{"type": "output", "path": final, "kind": "model"}]
    assert (run.job_dir / "final_model" / "model.safetensors").exists()


def test_epochs_and_batch_size_change_the_step_count(
    tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 12)
    one = train_here(training_config(tiny_model, data, num_epochs=1, batch_size=6))
    two = train_here(training_config(tiny_model, data, num_epochs=2, batch_size=4))
    assert one.of("progress")[0]["total_steps"] == 2
    assert two.of("progress")[0]["total_steps"] == 6
    assert max(m["step"] for m in two.of("metric")) == 6


def test_packing_trains_on_fewer_fuller_blocks(
    tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 24)
    padded = train_here(training_config(tiny_model, data, max_length=160))
    packed = train_here(training_config(tiny_model, data, max_length=160, packing=True))
    assert packed.returncode == 0, packed.stderr
    assert "packing: 24 examples in" in packed.stdout
    steps = [run.of("progress")[0]["total_steps"] for run in (padded, packed)]
    assert steps[0] == 6 and 1 <= steps[1] < 6
    losses = [m["train_loss"] for m in packed.of("metric") if "train_loss" in m]
    assert len(losses) == steps[1] and all(0 < loss < 20 for loss in losses)


def test_lora_adapter_is_saved_and_loadable(
    tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 8)
    config = training_config(tiny_model, data, use_lora=True, lora_config={"r": 4})
    run = train_here(config)
    assert run.returncode == 0, run.stderr
    adapter = run.job_dir / "final_adapter"
    assert run.of("output") == [{"type": "output", "path": str(adapter), "kind": "adapter"}]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    with warnings.catch_warnings():  # peft 0.21 asks transformers a deprecated question
        warnings.simplefilter("ignore", FutureWarning)
        loaded = PeftModel.from_pretrained(base, str(adapter))
    assert getattr(loaded.peft_config["default"], "r", None) == 4


def test_checkpoints_honour_save_total_limit(
    tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 16)
    run = train_here(training_config(tiny_model, data, save_steps=1, save_total_limit=2))
    assert run.returncode == 0, run.stderr
    assert [c["step"] for c in run.of("checkpoint")] == [1, 2, 3, 4]
    kept = sorted(p.name for p in (run.job_dir / "checkpoints").iterdir())
    assert kept == ["checkpoint-3", "checkpoint-4"]


def test_sigterm_checkpoints_and_resume_continues_from_its_step(
    tiny_model: Path, tmp_path: Path, train_here: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 400)
    config = training_config(tiny_model, data, batch_size=2)
    process, events_file = start_trainer(config, tmp_path / "first")
    deadline = time.monotonic() + 90
    while not any(e.get("type") == "metric" for e in read_events(events_file)):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    checkpoints = [e for e in read_events(events_file) if e["type"] == "checkpoint"]
    assert len(checkpoints) == 1
    stopped_at, path = checkpoints[0]["step"], checkpoints[0]["path"]
    assert 1 <= stopped_at < 200 and Path(path, "model.safetensors").exists()

    resumed = train_here(
        {**config, "data": {"max_samples": 2 * stopped_at + 4}}
        | {"training": {**config["training"], "checkpoint_resume": path}}
    )
    assert resumed.returncode == 0, resumed.stderr
    steps = [m["step"] for m in resumed.of("metric")]
    assert steps and steps[0] == stopped_at + 1


def test_an_unknown_method_fails_with_the_methods_there_are(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    run = run_trainer(training_config(tiny_model, tmp_path / "x.jsonl", method="ppo"))
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "invalid training config: training.method 'ppo' is not a method this trainer runs; "
        "use one of sft, cpt, dpo, orpo, kto, reward, rlhf"
    )


def test_missing_dataset_fails_with_its_path(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    missing = tmp_path / "missing.jsonl"
    run = run_trainer(training_config(tiny_model, missing))
    assert run.returncode == 2
    assert f"the dataset {missing} does not exist; check dataset_path" in run.stderr


def test_four_bit_on_cpu_is_a_clear_error(
    tiny_model: Path, tmp_path: Path, run_trainer: RunTrainer
) -> None:
    data = write_chat(tmp_path / "chat.jsonl", 4)
    quantization = {"load_in_4bit": True}
    run = run_trainer(training_config(tiny_model, data, use_lora=True, quantization=quantization))
    assert run.returncode == 2
    assert "4-bit loading, which needs a CUDA GPU" in run.stderr


def test_the_daemon_modules_never_import_torch() -> None:
    code = (
        "import sys, training_agent.cli, training_agent.daemon, training_agent.agent, "
        "training_agent.executor.runner, training_agent.executor.plan; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
