"""``training.max_prompt_length``: prompts cut to their last N tokens before training.

TRL (1.x) truncates only whole sequences (``max_length``); the platform's key caps the
prompt alone, keeping its end (the part nearest the answer), as TRL's older trainers
did. A chat row is first rendered with the tokenizer's chat template (TRL's own
``apply_chat_template``), so the limit counts the tokens the model sees.
"""

from __future__ import annotations

from typing import Any


def cap_prompts(
    rows: list[dict[str, Any]], tokenizer: Any, limit: int | None
) -> list[dict[str, Any]]:
    """``rows`` with every prompt at most ``limit`` tokens; unchanged when ``limit`` is None."""
    if limit is None or not rows:
        return rows
    from trl.data_utils import maybe_apply_chat_template, maybe_extract_prompt

    capped: list[dict[str, Any]] = []
    cut = 0
    for row in rows:
        text = dict(maybe_apply_chat_template(maybe_extract_prompt(dict(row)), tokenizer))
        ids = tokenizer(text["prompt"], add_special_tokens=False)["input_ids"]
        if len(ids) > limit:
            text["prompt"] = tokenizer.decode(ids[-limit:])
            cut += 1
        capped.append(text)
    if cut:
        print(f"max_prompt_length: {cut} of {len(rows)} prompts cut to their last {limit} tokens")
    return capped
