"""The built-in trainer's own overhead over a bare TRL loop: samples/s on the same model and data.

Each round trains the same tiny random-weights Llama (``--hidden 512``: steps of about
200 ms on two CPU cores) with DPO on the same preference pairs twice: through the
built-in trainer (``python -m training_agent.trainers.hf``, events to a file, no agent:
its row checks, callback and metric events are what is measured), and as a bare TRL
script (``--bare``: ``DPOTrainer`` with the same arguments, and only a timer callback).
The figure is the median samples/s per step after the first 3 steps; rounds alternate
the two sides so drift on a shared machine hits both alike.

    .venv/bin/python benchmarks/trl_overhead.py [--rounds 3] [--pairs 256] [--hidden 512]

Needs the train extra. Results go to stdout as Markdown rows; docs/benchmarks.md keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training_agent.trainers import tiny  # noqa: E402

WARMUP_STEPS = 3
BATCH = 8


def config(model: Path, data: Path) -> dict[str, Any]:
    training = {"method": "dpo", "batch_size": BATCH, "learning_rate": 1e-4, "max_length": 128}
    return {"model": {"name": str(model)}, "training": training, "dataset_path": str(data)}


def steady(values: list[float]) -> float:
    return statistics.median(values[WARMUP_STEPS:] or values)


def through_trainer(job: dict[str, Any], job_dir: Path) -> float:
    job_dir.mkdir(parents=True)
    (job_dir / "config.json").write_text(json.dumps(job))
    env = {**os.environ, "TRAINING_AGENT_JOB_DIR": str(job_dir)}
    env["TRAINING_AGENT_EVENTS_FILE"] = str(job_dir / "events.jsonl")
    subprocess.run(
        [sys.executable, "-m", "training_agent.trainers.hf", "--config", "config.json"],
        cwd=job_dir,
        env=env,
        check=True,
        capture_output=True,
    )
    events = [json.loads(line) for line in (job_dir / "events.jsonl").read_text().splitlines()]
    return steady([e["samples_per_second"] for e in events if "samples_per_second" in e])


def bare(job: dict[str, Any], job_dir: Path) -> float:
    job_dir.mkdir(parents=True)
    (job_dir / "config.json").write_text(json.dumps(job))
    result = subprocess.run(
        [sys.executable, __file__, "--bare", str(job_dir / "config.json")],
        cwd=job_dir,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def run_bare(config_file: Path) -> None:
    """A plain TRL DPO run with the built-in trainer's arguments; prints steady samples/s."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback, set_seed
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    from training_agent.trainers import hf_args, hf_config, hf_model

    settings, _ = hf_config.parse(json.loads(config_file.read_text()))
    set_seed(settings.seed)
    rows = [json.loads(line) for line in Path(settings.dataset_path).read_text().splitlines()]
    tokenizer = hf_model.tokenizer(settings)  # pad token and chat template as the trainer sets
    arguments = hf_args.common(
        settings, config_file.parent, bf16=False, fp16=False, cuda=False, has_eval=False
    )
    stamps: list[float] = []

    class Timer(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.monotonic())

    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(settings.model_name),
        args=DPOConfig(**arguments, beta=0.1, max_length=settings.max_length),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    start = time.monotonic()
    trainer.train()
    times = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
    print(steady([BATCH / t for t in times if t > 0]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        run_bare(args.bare)
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = tiny.build(root / "model", hidden_size=args.hidden)
        data = root / "pairs.jsonl"
        pairs = [
            {"prompt": f"Question {i}: is this fine? ", "chosen": "yes, it is", "rejected": "no"}
            for i in range(args.pairs)
        ]
        data.write_text("\n".join(json.dumps(p) for p in pairs))
        ours: list[float] = []
        plain: list[float] = []
        for round_no in range(args.rounds):
            job = config(model, data)
            first, second = (bare, through_trainer) if round_no % 2 else (through_trainer, bare)
            a = first(job, root / f"r{round_no}-a")
            b = second(job, root / f"r{round_no}-b")
            mine, theirs = (a, b) if first is through_trainer else (b, a)
            ours.append(mine)
            plain.append(theirs)
            print(f"round {round_no + 1}: trainer {mine:.2f} samples/s, bare TRL {theirs:.2f}")
        overhead = 1 - statistics.median(ours) / statistics.median(plain)
        print(
            f"| hidden {args.hidden}, dpo, {args.pairs} pairs | "
            f"{BATCH / statistics.median(plain) * 1000:.0f} ms | "
            f"{statistics.median(plain):.2f} ({', '.join(f'{v:.2f}' for v in plain)}) | "
            f"{statistics.median(ours):.2f} ({', '.join(f'{v:.2f}' for v in ours)}) | "
            f"{100 * overhead:.1f} % |"
        )


if __name__ == "__main__":
    main()
