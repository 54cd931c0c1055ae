"""scripts/gpu-check: where there is no CUDA it stops at once; the wheel folder holds
everything but torch; the benchmark's arithmetic."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.trainers.conftest import cuda_available
from training_agent.commands.runtime_setup import CUDA_PINS
from training_agent.trainers import gpu_bench, gpu_check

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_stops_at_once_with_one_sentence_and_exit_3() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "gpu-check")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == gpu_check.EXIT_NOTHING_TO_CHECK == 3
    assert result.stdout == ""
    sentence = result.stderr.strip()
    assert "\n" not in sentence and sentence.endswith(("has nothing to check here", "GPU's CUDA"))
    assert time.monotonic() - started < 30  # no test, no model: only the question asked


def test_the_reasons_name_what_is_missing() -> None:
    none = gpu_check.no_cuda_reason(which=lambda name: None, device_nodes=())
    assert none == (
        "this machine has no NVIDIA GPU (no nvidia-smi, no /dev/nvidia*): gpu-check "
        "measures the trainer on a CUDA GPU and has nothing to check here"
    )
    if not cuda_available():  # a driver but a torch without CUDA
        reason = gpu_check.no_cuda_reason(which=lambda name: "/usr/bin/" + name)
        assert reason is not None and "sees no CUDA GPU" in reason


def test_the_wheel_folder_holds_everything_but_torch(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def pip(argv: list[str]) -> int:
        calls.append(argv)
        if "--report" in argv:
            installs = [
                {"metadata": {"name": name, "version": "1.0"}}
                for name in ("trl", "torch", "nvidia-cublas-cu12", "triton", "pyarrow", "pytest")
            ]
            Path(argv[argv.index("--report") + 1]).write_text(json.dumps({"install": installs}))
        return 0

    folder = tmp_path / "wheels"
    assert gpu_check.make_wheels(folder, run=pip) == 0
    resolve, download = calls
    assert "torch==2.13.0" in resolve and gpu_check.QLORA_PIN in resolve
    assert download[-3:] == ["pyarrow==1.0", "pytest==1.0", "trl==1.0"]
    assert "--no-deps" in download and "--only-binary=:all:" in download
    requirements = (folder / "requirements.txt").read_text().split()
    assert "trl==1.16.0" in requirements and "pytest-timeout" in requirements
    assert not [r for r in requirements if r.startswith("torch")]


def test_the_qlora_pin_is_the_runtime_setup_one() -> None:
    assert (gpu_check.QLORA_PIN,) == CUDA_PINS


def test_the_benchmark_counts_tokens_and_knows_its_gpus() -> None:
    sft, tokens, sequence = gpu_bench.rows("sft", 2, 512)
    assert len(sft) == 2 and len(sft[0]["text"]) == 512 and tokens == sequence == 512
    pairs, tokens, sequence = gpu_bench.rows("dpo", 3, 512)
    assert len(pairs[0]["prompt"]) == 128 and len(pairs[0]["chosen"]) == 255
    assert (tokens, sequence) == (768, 384)
    assert gpu_bench.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_bench.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_bench.peak_tflops("NVIDIA GeForce GTX 1080") is None
    run = {"method": "dpo", "kind": "bf16 LoRA", "exit_code": 0, "tokens_per_second": 51234}
    row = gpu_bench.markdown_row("H100", run | {"peak_memory_gib": 9.5, "mfu": 0.4123})
    assert row == "| H100 | dpo | bf16 LoRA | 51,234 | 9.5 GiB | 41.2 % | ok |"


def test_a_benchmark_run_measures_the_real_trainer(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark's code path on a CPU and the tiny model (bf16 falls back to float32),
    so a GPU machine's first run is not also the code's first run."""
    import warnings

    monkeypatch.setenv("TRAINING_AGENT_EVENTS_FILE", "")  # measure() points it at its run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = gpu_bench.measure(
            tmp_path, tiny_model, "dpo", "bf16 LoRA", {}, 4, 10_000, 0.001, batch=4, length=64
        )
    assert run["exit_code"] == 0 and run["steps"] == 4 and run["tokens_per_second"] > 0
    # dpo with LoRA: 3 passes of 2 N + 4 L d T FLOPs per token; T = 16 + 31 + 1 (EOS)
    flops = 3 * (2 * 10_000 + 4 * 32 * 1024 * 48)
    assert run["mfu"] == pytest.approx(flops * run["tokens_per_second"] / 1e9, rel=0.01)
