"""The GPU figures of ``scripts/gpu-check``: the real trainer on a model of about 0.5 B.

    python -m training_agent.trainers.gpu_bench --out bench.json [--steps 30]

Builds a random-init Llama of about 0.5 B parameters from a config (no hub: 32 layers,
hidden 1024, the character tokenizer of ``tiny``), then trains it in this process with
the built-in trainer (``hf.run``, the path a job takes) on synthetic rows of fixed
length: a bf16 LoRA SFT, a bf16 LoRA DPO, and a QLoRA (4-bit) SFT when bitsandbytes
imports. For each it reports tokens/s (steady state: the median over the steps after
the first three), peak GPU memory (``torch.cuda.max_memory_allocated``) and model FLOPs
utilisation: FLOPs per token / the GPU's dense bf16 peak, where one forward pass costs
F = 2 N + 4 L d T (N weights outside the embedding, L layers, width d, T tokens per
sequence), LoRA training 2 F (no weight gradients), DPO with LoRA 3 F (plus the
reference pass with the adapter off), a full fine-tune 3 F.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import string
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HIDDEN, LAYERS, INTERMEDIATE, HEADS, VOCAB = 1024, 32, 2816, 16, 32000
WARMUP_STEPS = 3
# Dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, most specific first.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_agent.trainers.gpu_bench")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--peak-tflops", type=float)
    args = parser.parse_args(argv)
    import torch

    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or peak_tflops(name)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model, weights = build_model(root / "model")
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("sft", "bf16 LoRA", {}),
            ("dpo", "bf16 LoRA", {}),
        ]
        if _bitsandbytes():
            cases.append(("sft", "QLoRA 4-bit", {"quantization": QUANTIZATION}))
        for method, kind, extra in cases:
            runs.append(measure(root, model, method, kind, extra, args.steps, weights, peak))
            print(markdown_row(name, runs[-1]), flush=True)
    result = {"gpu": name, "peak_tflops": peak, "weights": weights, "runs": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(run["exit_code"] == 0 for run in runs) else 1


QUANTIZATION = {
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_compute_dtype": "bfloat16",
}


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU known by name; None for another."""
    for fragment, tflops in PEAK_TFLOPS:
        if fragment in device_name:
            return tflops
    return None


def build_model(directory: Path) -> tuple[Path, int]:
    """A random-init Llama of about 0.5 B parameters and the tiny character tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training_agent.trainers import tiny

    tokenizer = tiny.tokenizer()
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model: Any = LlamaForCausalLM(config)
    model = model.to(dtype=torch.bfloat16)
    weights = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    torch.cuda.empty_cache()
    return directory, weights


def rows(method: str, count: int, length: int) -> tuple[list[dict[str, str]], int, int]:
    """``count`` synthetic rows, the tokens each puts through the model, and the length of
    each sequence."""
    letters = string.ascii_lowercase + " "

    def text(seed: int, size: int) -> str:
        return "".join(letters[(seed * 7 + i * 13) % len(letters)] for i in range(size))

    if method == "sft":  # one full max_length block per row (one token per character)
        return [{"text": text(i, length)} for i in range(count)], length, length
    prompt, answer = length // 4, length // 2 - 1
    pairs = [
        {"prompt": text(i, prompt), "chosen": text(i + 1, answer), "rejected": text(i + 2, answer)}
        for i in range(count)
    ]
    sequence = prompt + answer + 1  # prompt, answer, EOS: once for chosen, once for rejected
    return pairs, 2 * sequence, sequence


def measure(
    root: Path,
    model: Path,
    method: str,
    kind: str,
    extra: dict[str, Any],
    steps: int,
    weights: int,
    peak: float | None,
    *,
    batch: int = 8,
    length: int = 512,
    shape: tuple[int, int] = (LAYERS, HIDDEN),
) -> dict[str, Any]:
    """Train ``model`` with ``method`` for ``steps`` steps and measure the run."""
    import torch

    from training_agent.trainers import hf, hf_config

    cuda = torch.cuda.is_available()  # False only in the tests' smoke run on a CPU
    data, tokens_per_row, sequence = rows(method, batch * steps, length)
    job_dir = root / f"{method}-{kind.split()[0].lower()}"
    job_dir.mkdir()
    (job_dir / "data.jsonl").write_text("\n".join(json.dumps(r) for r in data), encoding="utf-8")
    training = {"method": method, "batch_size": batch, "max_length": length, "bf16": True}
    training |= {"use_lora": True, "learning_rate": 1e-4, "logging_steps": 1, **extra}
    config = {
        "model": {"name": str(model), "torch_dtype": "bfloat16"},
        "training": training,
        "dataset_path": str(job_dir / "data.jsonl"),
    }
    settings, _ = hf_config.parse(config)
    os.environ["TRAINING_AGENT_EVENTS_FILE"] = str(job_dir / "events.jsonl")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    code = hf.run(settings, job_dir)
    peak_gib = torch.cuda.max_memory_allocated() / (1 << 30) if cuda else 0.0
    events = [json.loads(line) for line in (job_dir / "events.jsonl").read_text().splitlines()]
    rates = [e["samples_per_second"] for e in events if "samples_per_second" in e]
    samples_per_s = statistics.median(rates[WARMUP_STEPS:] or rates) if rates else 0.0
    tokens_per_s = samples_per_s * tokens_per_row
    passes = 3 if method == "dpo" else 2  # + the reference pass; LoRA: no weight gradients
    layers, hidden = shape
    flops_per_token = passes * (2 * weights + 4 * layers * hidden * sequence)
    mfu = flops_per_token * tokens_per_s / (peak * 1e12) if peak else None
    return {
        "method": method,
        "kind": kind,
        "exit_code": code,
        "steps": len(rates),
        "tokens_per_second": round(tokens_per_s),
        "peak_memory_gib": round(peak_gib, 2),
        "mfu": None if mfu is None else round(mfu, 4),
    }


def markdown_row(gpu: str, run: dict[str, Any]) -> str:
    mfu = "n/a (unknown peak)" if run["mfu"] is None else f"{100 * run['mfu']:.1f} %"
    status = "ok" if run["exit_code"] == 0 else f"failed (exit {run['exit_code']})"
    return (
        f"| {gpu} | {run['method']} | {run['kind']} | {run['tokens_per_second']:,} | "
        f"{run['peak_memory_gib']} GiB | {mfu} | {status} |"
    )


def _bitsandbytes() -> bool:
    import importlib

    try:
        importlib.import_module("bitsandbytes")
    except Exception:  # not installed, or installed without a usable CUDA library
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
