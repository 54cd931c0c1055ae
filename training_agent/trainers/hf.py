"""The built-in Hugging Face trainer: runs a FineTune Lab ``TrainingConfig`` (SFT).

    python -m training_agent.trainers.hf --config <job_dir>/config.json

Runs only inside the trainer process; the daemon never imports this module's heavy
dependencies. Config keys: ``hf_config``; datasets: ``hf_data``; events: ``hf_callback``.
Exit codes: 0 done; 2 a config or dataset the user must fix (one sentence on stderr);
3 no usable training runtime; 143 stopped by SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from training_agent.job_policy import PolicyError
from training_agent.trainers import hf_config, hf_data, policy

EXIT_INVALID = 2
EXIT_NO_RUNTIME = 3
EXIT_TERMINATED = 128 + 15
RUNTIME_MISSING = (
    "this Python ({python}) cannot import {module}, which the built-in Hugging Face "
    "trainer needs; run `training-agent runtime setup` on this machine (or install the "
    "agent with its train extra) and submit the job again"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_agent.trainers.hf")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    for module in ("torch", "transformers", "datasets", "peft"):
        try:
            __import__(module)
        except ImportError:
            print(RUNTIME_MISSING.format(python=sys.executable, module=module), file=sys.stderr)
            return EXIT_NO_RUNTIME
    try:
        raw = json.loads(args.config.read_text(encoding="utf-8"))
        settings, ignored = hf_config.parse(raw)
    except (OSError, ValueError) as exc:
        print(f"invalid training config: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for key in ignored:
        print(f"config key {key} is not used by the built-in trainer; ignored")
    job_dir = Path(os.environ.get("TRAINING_AGENT_JOB_DIR") or args.config.parent)
    try:  # the owner's policy, not the job config, says what may be read and run
        settings = policy.enforce(settings, job_dir)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    try:
        return _train(settings, job_dir)
    except (hf_data.DatasetError, DeviceError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID


class DeviceError(ValueError):
    """The config asks for something this machine's devices cannot do."""


def _train(settings: hf_config.HfSettings, job_dir: Path) -> int:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    from training_agent import report
    from training_agent.trainers.hf_callback import AgentCallback

    set_seed(settings.seed)
    cuda = torch.cuda.is_available()
    bf16, fp16 = _precision(settings, cuda)
    tokenizer = _tokenizer(settings)
    train_rows, eval_rows = _rows(settings, job_dir)
    train_set = _tokenized(train_rows, tokenizer, settings)
    eval_set = _tokenized(eval_rows, tokenizer, settings) if eval_rows else None
    model = _model(settings, cuda)
    samples_per_step = settings.batch_size * settings.gradient_accumulation_steps
    callback = AgentCallback(samples_per_step)
    trainer = Trainer(
        model=model,
        args=_arguments(
            settings, job_dir, bf16=bf16, fp16=fp16, cuda=cuda, has_eval=bool(eval_set)
        ),
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=hf_data.IGNORE_INDEX),
        callbacks=[callback],
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        callback.request_stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    resume = _resume_path(settings.checkpoint_resume, job_dir)
    trainer.train(resume_from_checkpoint=resume)
    if callback.stop_requested:
        print(f"stopped by SIGTERM at step {trainer.state.global_step} after a checkpoint")
        return EXIT_TERMINATED
    final = job_dir / ("final_adapter" if settings.lora else "final_model")
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    report.output(final)
    print(f"saved the {'LoRA adapter' if settings.lora else 'model'} to {final}")
    return 0


def _precision(settings: hf_config.HfSettings, cuda: bool) -> tuple[bool, bool]:
    import torch

    if settings.quantization_4bit and not cuda:
        raise DeviceError(
            "training.quantization asks for 4-bit loading, which needs a CUDA GPU and this "
            "machine has none; remove quantization from the config or run on a GPU agent"
        )
    bf16, fp16 = settings.bf16, settings.fp16
    if bf16 and not (cuda and torch.cuda.is_bf16_supported()):
        print("bf16 is not supported on this device; training in float32 instead")
        bf16 = False
    if fp16 and not cuda:
        print("fp16 needs a CUDA GPU; training in float32 instead")
        fp16 = False
    return bf16, fp16


def _tokenizer(settings: hf_config.HfSettings) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        settings.tokenizer_name or settings.model_name,
        trust_remote_code=settings.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if settings.padding_side:
        tokenizer.padding_side = settings.padding_side
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = hf_data.DEFAULT_CHAT_TEMPLATE
    return tokenizer


def _model(settings: hf_config.HfSettings, cuda: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code}
    dtype = settings.torch_dtype
    if dtype and dtype != "auto":
        if not cuda and dtype in ("float16", "bfloat16"):
            print(f"model.torch_dtype {dtype} is for GPUs; loading in float32 on this CPU")
        else:
            kwargs["dtype"] = getattr(torch, dtype)
    if settings.quantization_4bit:
        from transformers import BitsAndBytesConfig

        q = settings.quantization
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type=q.get("bnb_4bit_quant_type", "nf4"),
            bnb_4bit_compute_dtype=getattr(torch, q.get("bnb_4bit_compute_dtype", "bfloat16")),
            bnb_4bit_use_double_quant=bool(q.get("bnb_4bit_use_double_quant", False)),
        )
    model: Any = AutoModelForCausalLM.from_pretrained(settings.model_name, **kwargs)
    if settings.gradient_checkpointing:
        model.config.use_cache = False
    if settings.lora:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if settings.quantization_4bit:
            model = prepare_model_for_kbit_training(model)  # type: ignore[no-untyped-call]
        lora = settings.lora
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules) if lora.target_modules else None,
            bias=lora.bias,  # type: ignore[arg-type]
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model


def _rows(
    settings: hf_config.HfSettings, job_dir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cache = Path(os.environ.get("TRAINING_AGENT_DATASET_CACHE") or job_dir / "datasets")
    path = hf_data.fetch(settings.dataset_path, cache)
    train_split = settings.train_split if isinstance(settings.train_split, str) else None
    rows = hf_data.load_rows(hf_data.data_files(path, train_split))
    if settings.max_samples:
        rows = rows[: settings.max_samples]
    eval_rows: list[dict[str, Any]] = []
    if isinstance(settings.eval_split, str) and path.is_dir():
        eval_rows = hf_data.load_rows(hf_data.data_files(path, settings.eval_split))
    elif isinstance(settings.eval_split, float):
        cut = max(1, int(len(rows) * settings.eval_split))
        rows, eval_rows = rows[:-cut], rows[-cut:]
    if not rows:
        raise hf_data.DatasetError(f"the dataset {settings.dataset_path} has no training rows")
    print(f"dataset: {len(rows)} training rows, {len(eval_rows)} evaluation rows")
    return rows, eval_rows


def _tokenized(rows: list[dict[str, Any]], tokenizer: Any, settings: hf_config.HfSettings) -> Any:
    from datasets import Dataset

    samples = [hf_data.tokenize_row(r, tokenizer, settings.max_length) for r in rows]
    if settings.packing:
        blocks = hf_data.pack(samples, settings.max_length)
        print(
            f"packing: {len(samples)} examples in {len(blocks)} blocks of up to "
            f"{settings.max_length} tokens"
        )
        samples = blocks
    return Dataset.from_list(samples)


def _arguments(
    settings: hf_config.HfSettings,
    job_dir: Path,
    *,
    bf16: bool,
    fp16: bool,
    cuda: bool,
    has_eval: bool,
) -> Any:
    from transformers import TrainingArguments

    eval_strategy = "no"
    if has_eval:
        eval_strategy = "steps" if settings.eval_steps else "epoch"
    extra: dict[str, Any] = {}
    if settings.gradient_checkpointing:
        extra["gradient_checkpointing"] = True
    return TrainingArguments(
        **extra,
        output_dir=str(job_dir / "checkpoints"),
        num_train_epochs=settings.num_epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size or settings.batch_size,
        learning_rate=settings.learning_rate,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        warmup_steps=settings.warmup_steps or settings.warmup_ratio,
        lr_scheduler_type=settings.lr_scheduler_type,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        optim=settings.optim,
        bf16=bf16,
        fp16=fp16,
        logging_steps=settings.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=settings.eval_steps,
        save_strategy="steps" if settings.save_steps else "no",
        save_steps=settings.save_steps or 500,
        save_total_limit=settings.save_total_limit,
        seed=settings.seed,
        use_cpu=not cuda,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
    )


def _resume_path(value: str | None, job_dir: Path) -> str | None:
    if not value:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else job_dir / path)


if __name__ == "__main__":
    sys.exit(main())
