"""Load what a training method trains: the tokenizer, the causal LM or a reward model.

Runs inside the trainer process (imports torch lazily). ``precision`` picks bf16/fp16 for
the device and refuses 4-bit loading without CUDA; ``causal_lm`` and ``sequence_scorer``
load the model with the config's dtype, 4-bit quantization and LoRA adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training_agent.trainers import hf_config, hf_data


class DeviceError(ValueError):
    """The config asks for something this machine's devices cannot do."""


class ModelLoadError(ValueError):
    """A model or tokenizer named by the config cannot be loaded; the message says which."""


def precision(settings: hf_config.HfSettings, cuda: bool) -> tuple[bool, bool]:
    """``(bf16, fp16)`` for this device; raises ``DeviceError`` for 4-bit without CUDA."""
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


def tokenizer(settings: hf_config.HfSettings, name: str | None = None) -> Any:
    """The tokenizer of ``name`` (default: the config's), with a pad token and a chat template."""
    from transformers import AutoTokenizer

    source = name or settings.tokenizer_name or settings.model_name
    try:
        loaded = AutoTokenizer.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer {source}: {_first_line(exc)}") from exc
    if loaded.pad_token is None:
        loaded.pad_token = loaded.eos_token
    if settings.padding_side and name is None:
        loaded.padding_side = settings.padding_side
    if not getattr(loaded, "chat_template", None):
        loaded.chat_template = hf_data.DEFAULT_CHAT_TEMPLATE
    return loaded


def causal_lm(settings: hf_config.HfSettings, cuda: bool) -> Any:
    """The model to train (a peft model with ``use_lora``)."""
    from transformers import AutoModelForCausalLM

    model = _load(AutoModelForCausalLM, settings.model_name, settings, cuda)
    return _adapt(model, settings, task_type="CAUSAL_LM")


def sequence_scorer(settings: hf_config.HfSettings, cuda: bool, pad_token_id: int) -> Any:
    """``model.name`` with a one-output score head, for reward-model training."""
    from transformers import AutoModelForSequenceClassification

    model = _load(
        AutoModelForSequenceClassification, settings.model_name, settings, cuda, num_labels=1
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return _adapt(model, settings, task_type="SEQ_CLS")


def frozen_scorer(name: str, settings: hf_config.HfSettings, cuda: bool) -> Any:
    """A trained reward model (``training.reward_model``), for scoring only."""
    from transformers import AutoModelForSequenceClassification

    where = f"the reward model {name} (training.reward_model)"
    local = name.startswith(("/", ".", "~")) or "\\" in name
    if local and not Path(name).expanduser().is_dir():
        raise ModelLoadError(
            f"{where} is not a directory on this machine; name the directory of a trained "
            "reward model (the output of a job with method reward) or its hub id"
        )
    try:
        model: Any = AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=1, trust_remote_code=settings.trust_remote_code
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(
            f"cannot load {where}: {_first_line(exc)}; it must be a directory or hub id of a "
            "sequence-classification model with one output, such as the output of a job "
            "with method reward"
        ) from exc
    if cuda:
        model = model.to("cuda")
    return model.eval()


def _load(auto: Any, name: str, settings: hf_config.HfSettings, cuda: bool, **extra: Any) -> Any:
    import torch

    kwargs: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code, **extra}
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
    try:
        model: Any = auto.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load the model {name} (model.name): {_first_line(exc)}"
        ) from exc
    if settings.gradient_checkpointing:
        model.config.use_cache = False
    return model


def _adapt(model: Any, settings: hf_config.HfSettings, *, task_type: str) -> Any:
    if not settings.lora:
        return model
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
        task_type=task_type,
    )
    return get_peft_model(model, config)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")
