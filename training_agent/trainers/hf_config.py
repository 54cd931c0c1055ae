"""A FineTune Lab ``TrainingConfig`` mapped to the settings the Hugging Face trainer uses.

Pure Python (no torch): ``parse(config)`` returns an ``HfSettings`` and the dotted names of
every key it did not use, which the trainer writes to the job log. A value of the wrong
kind raises ``ValueError`` with one sentence naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training_agent.trainers.distributed import DistributedSettings
from training_agent.trainers.distributed import parse as parse_distributed
from training_agent.trainers.methods.options import OPTION_KEYS, MethodOptions, parse_options

# Keys read from each section; anything else there is reported as ignored.
_MODEL_KEYS = {"name", "trust_remote_code", "torch_dtype"}
_TOKENIZER_KEYS = {"name", "trust_remote_code", "padding_side", "add_eos_token"}
_TRAINING_KEYS = {
    "method",
    "num_epochs",
    "batch_size",
    "eval_batch_size",
    "learning_rate",
    "gradient_accumulation_steps",
    "warmup_steps",
    "warmup_ratio",
    "max_length",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "gradient_checkpointing",
    "use_lora",
    "lora_config",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "quantization",
    "bf16",
    "fp16",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "save_total_limit",
    "packing",
    "checkpoint_resume",
    "distributed",
    *OPTION_KEYS,
}
_DATA_KEYS = {"max_samples", "train_split", "eval_split"}
_TOP_KEYS = {
    "model",
    "tokenizer",
    "training",
    "data",
    "dataset_path",
    "seed",
    "lora",
    "type",
    "outputs",
}


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    bias: str = "none"


@dataclass(frozen=True)
class HfSettings:
    """What the trainer needs, with FineTune Lab's defaults where a key is absent."""

    model_name: str
    dataset_path: str
    tokenizer_name: str | None = None
    trust_remote_code: bool = False
    torch_dtype: str | None = None
    padding_side: str | None = None
    method: str = "sft"
    num_epochs: float = 1.0
    batch_size: int = 4
    eval_batch_size: int | None = None
    learning_rate: float = 2e-4
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    max_length: int = 512
    lr_scheduler_type: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    quantization_4bit: bool = False
    quantization: dict[str, Any] = field(default_factory=dict)
    bf16: bool = False
    fp16: bool = False
    logging_steps: int = 1
    eval_steps: int | None = None
    save_steps: int | None = None
    save_total_limit: int | None = None
    packing: bool = False
    checkpoint_resume: str | None = None
    seed: int = 42
    max_samples: int | None = None
    train_split: str | float | None = None
    eval_split: str | float | None = None
    options: MethodOptions = field(default_factory=MethodOptions)
    distributed: DistributedSettings | None = None


def parse(config: dict[str, Any]) -> tuple[HfSettings, list[str]]:
    """The settings for ``config`` and the sorted dotted names of the keys it ignored."""
    ignored: list[str] = [k for k in config if k not in _TOP_KEYS]
    model = _section(config, "model")
    tokenizer = _section(config, "tokenizer")
    training = _section(config, "training")
    data = _section(config, "data")
    for name, section, known in (
        ("model", model, _MODEL_KEYS),
        ("tokenizer", tokenizer, _TOKENIZER_KEYS),
        ("training", training, _TRAINING_KEYS),
        ("data", data, _DATA_KEYS),
    ):
        ignored += [f"{name}.{key}" for key in section if key not in known]

    model_name = model.get("name")
    if not isinstance(model_name, str) or not model_name:
        raise ValueError("model.name must be a model id or a local model directory")
    dataset_path = config.get("dataset_path")
    if not isinstance(dataset_path, str) or not dataset_path:
        raise ValueError(
            "the config has no dataset_path: set it to a local file or directory or an "
            "http(s) URL of the training data"
        )
    method = str(training.get("method", "sft"))
    options = parse_options(method, training)

    lora, lora_ignored = _lora(config, training)
    ignored += lora_ignored
    quant = training.get("quantization") or {}
    if not isinstance(quant, dict):
        raise ValueError("training.quantization must be an object")
    if quant.get("load_in_4bit") and lora is None:
        raise ValueError(
            "training.quantization.load_in_4bit trains a LoRA adapter on the frozen 4-bit "
            "model (QLoRA): set training.use_lora to true, or remove quantization for a "
            "full fine-tune"
        )
    settings = HfSettings(
        model_name=model_name,
        dataset_path=dataset_path,
        tokenizer_name=_opt_str(tokenizer, "name", "tokenizer"),
        trust_remote_code=bool(model.get("trust_remote_code", False)),
        torch_dtype=_opt_str(model, "torch_dtype", "model"),
        padding_side=_opt_str(tokenizer, "padding_side", "tokenizer"),
        method=method,
        num_epochs=_num(training, "num_epochs", 1.0),
        batch_size=_int(training, "batch_size", 4, minimum=1),
        eval_batch_size=_opt_int(training, "eval_batch_size"),
        learning_rate=_num(training, "learning_rate", 2e-4),
        gradient_accumulation_steps=_int(training, "gradient_accumulation_steps", 1, minimum=1),
        warmup_steps=_int(training, "warmup_steps", 0, minimum=0),
        warmup_ratio=_num(training, "warmup_ratio", 0.0),
        max_length=_int(training, "max_length", 512, minimum=8),
        lr_scheduler_type=str(training.get("lr_scheduler_type") or "linear"),
        weight_decay=_num(training, "weight_decay", 0.0),
        max_grad_norm=_num(training, "max_grad_norm", 1.0),
        optim=str(training.get("optim") or "adamw_torch"),
        gradient_checkpointing=bool(training.get("gradient_checkpointing", False)),
        lora=lora,
        quantization_4bit=bool(quant.get("load_in_4bit", False)),
        quantization=dict(quant),
        bf16=bool(training.get("bf16", False)),
        fp16=bool(training.get("fp16", False)),
        logging_steps=_int(training, "logging_steps", 1, minimum=1),
        eval_steps=_opt_int(training, "eval_steps"),
        save_steps=_opt_int(training, "save_steps"),
        save_total_limit=_opt_int(training, "save_total_limit"),
        packing=bool(training.get("packing", method == "cpt")),
        checkpoint_resume=_opt_str(training, "checkpoint_resume", "training"),
        seed=_int(config, "seed", 42, minimum=0),
        max_samples=_opt_int(data, "max_samples"),
        train_split=_split(data, "train_split"),
        eval_split=_split(data, "eval_split"),
        options=options,
        distributed=parse_distributed(training.get("distributed")),
    )
    return settings, sorted(ignored)


def _lora(
    config: dict[str, Any], training: dict[str, Any]
) -> tuple[LoraSettings | None, list[str]]:
    if not training.get("use_lora"):
        return None, []
    raw = training.get("lora_config") or config.get("lora") or {}
    if not isinstance(raw, dict):
        raise ValueError("training.lora_config must be an object")
    known = {"r", "lora_alpha", "alpha", "lora_dropout", "dropout", "target_modules", "bias"}
    ignored = [f"lora_config.{k}" for k in raw if k not in known and k != "task_type"]
    targets = raw.get("target_modules")
    lora = LoraSettings(
        r=int(raw.get("r", training.get("lora_r", 8))),
        alpha=int(raw.get("lora_alpha", raw.get("alpha", training.get("lora_alpha", 16)))),
        dropout=float(
            raw.get("lora_dropout", raw.get("dropout", training.get("lora_dropout", 0.05)))
        ),
        target_modules=tuple(str(t) for t in targets) if isinstance(targets, list) else None,
        bias=str(raw.get("bias", "none")),
    )
    return lora, ignored


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _num(section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return float(value)


def _int(section: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer of at least {minimum}")
    return value


def _opt_int(section: dict[str, Any], key: str) -> int | None:
    return None if section.get(key) is None else _int(section, key, 0, minimum=1)


def _opt_str(section: dict[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string")
    return value


def _split(section: dict[str, Any], key: str) -> str | float | None:
    value = section.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        return float(value)
    raise ValueError(f"data.{key} must be a split name or a fraction between 0 and 1")
