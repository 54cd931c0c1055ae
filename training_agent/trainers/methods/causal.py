"""``sft`` and ``cpt``: next-token training with ``transformers.Trainer``.

``sft`` tokenizes each row with its loss mask (``hf_data.tokenize_row``: prompts and user
turns carry no loss) and, with ``packing``, packs whole examples into blocks. ``cpt``
(continued pre-training) trains on every token of raw text: each document ends with EOS
and is cut into blocks of ``max_length`` tokens, never truncated; with ``packing`` (on
by default for cpt) the documents run on into each other, so every block is full.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from training_agent.trainers import hf_args, hf_data, hf_model
from training_agent.trainers.methods import Job


def build(job: Job) -> Any:
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    tokens = _cpt_samples if job.method == "cpt" else _sft_samples
    train_set = Dataset.from_list(tokens(job.train_rows, job))
    eval_set = Dataset.from_list(tokens(job.eval_rows, job)) if job.eval_rows else None
    arguments = hf_args.common(
        job.settings,
        job.job_dir,
        bf16=job.bf16,
        fp16=job.fp16,
        cuda=job.cuda,
        has_eval=eval_set is not None,
    )
    return Trainer(
        model=hf_model.causal_lm(job.settings, job.cuda),
        args=TrainingArguments(**arguments),
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorForSeq2Seq(
            job.tokenizer, label_pad_token_id=hf_data.IGNORE_INDEX
        ),
        callbacks=job.callbacks,
    )


def _sft_samples(rows: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    settings = job.settings
    samples = [hf_data.tokenize_row(r, job.tokenizer, settings.max_length) for r in rows]
    if not settings.packing:
        return samples
    blocks = hf_data.pack(samples, settings.max_length)
    print(
        f"packing: {len(samples)} examples in {len(blocks)} blocks of up to "
        f"{settings.max_length} tokens"
    )
    return blocks


def _cpt_samples(rows: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    eos = job.tokenizer.eos_token_id
    documents = [
        list(job.tokenizer(str(r["text"]), add_special_tokens=False)["input_ids"])
        + ([eos] if eos is not None else [])
        for r in rows
    ]
    blocks = text_blocks(documents, job.settings.max_length, packing=job.settings.packing)
    total = sum(len(d) for d in documents)
    print(
        f"cpt: {len(documents)} documents, {total} tokens in {len(blocks)} blocks of up to "
        f"{job.settings.max_length} tokens ({'packed' if job.settings.packing else 'unpacked'})"
    )
    return blocks


def text_blocks(
    documents: Iterable[list[int]], max_length: int, *, packing: bool
) -> list[dict[str, Any]]:
    """Token ids cut into blocks of ``max_length``, every token a label.

    With ``packing`` the documents are joined first, so only the very last block may be
    short; without it each document is cut on its own and ends its last block.
    """
    streams = [[t for d in documents for t in d]] if packing else [list(d) for d in documents]
    blocks = []
    for ids in streams:
        for start in range(0, len(ids), max_length):
            chunk = ids[start : start + max_length]
            blocks.append({"input_ids": chunk, "attention_mask": [1] * len(chunk), "labels": chunk})
    return blocks
