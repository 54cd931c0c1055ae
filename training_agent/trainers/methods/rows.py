"""Which rows each training method trains on, checked before any model is loaded.

Pure Python. ``check(method, rows, source)`` returns the rows reduced to the columns the
method reads (extra columns would only confuse TRL's dataset preparation), or raises
``DatasetError`` with one sentence naming the method, the columns it needs and the
columns found. Values may be strings or chat ``messages`` lists (``role``, ``content``)
where TRL accepts conversational rows, but all of them one kind, in every row.
"""

from __future__ import annotations

from typing import Any

from training_agent.trainers.hf_data import DatasetError, row_shape

# What each method needs, in the words of the error sentence; the first set of columns
# that a row has is the shape it is read as.
PREFERENCE = (("prompt", "chosen", "rejected"), ("chosen", "rejected"))
SHAPES: dict[str, tuple[tuple[str, ...], ...]] = {
    "cpt": (("text",),),
    "dpo": PREFERENCE,
    "orpo": PREFERENCE,
    "reward": PREFERENCE,
    "kto": (("prompt", "completion", "label"),),
    "rlhf": (("prompt",),),
}
NEEDS = {
    "sft": "text, messages, conversations, prompt and completion, or instruction and output",
    "cpt": "text (or plain .txt files)",
    "dpo": "prompt, chosen and rejected (prompt may be left out when chosen and rejected "
    "hold the whole conversation)",
    "kto": "prompt, completion and label (true for a desirable completion, false otherwise)",
    "rlhf": "prompt",
}
NEEDS["orpo"] = NEEDS["reward"] = NEEDS["dpo"]
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def check(method: str, rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """``rows`` fit for ``method``, reduced to its columns; ``DatasetError`` otherwise."""
    if not rows:
        raise DatasetError(f"the dataset {source} has no rows for method {method}")
    if method == "sft":
        for index, row in enumerate(rows, start=1):
            if row_shape([row]) is None:
                raise _misfit(method, row, index, source)
        return rows
    columns = _shape(method, rows[0], 1, source)
    kinds: dict[str, str] = {}
    checked = []
    for index, row in enumerate(rows, start=1):
        if _shape(method, row, index, source) != columns:
            raise _misfit(method, row, index, source, expected=columns)
        picked = {name: row[name] for name in columns}
        for name in columns:
            if name == "label":
                picked[name] = _label(row[name], index, source)
            else:
                _check_kind(method, name, row[name], kinds, index, source)
        if index == 1 and len({kinds[n] for n in columns if n != "label"}) > 1:
            found = ", ".join(f"{n} as {kinds[n]}" for n in columns if n != "label")
            raise DatasetError(
                f"method {method} reads a row's text columns as all strings or all chat "
                f"messages lists, and the dataset {source} has {found}"
            )
        checked.append(picked)
    return checked


def _check_kind(
    method: str, name: str, value: Any, kinds: dict[str, str], index: int, source: str
) -> None:
    """A text column holds a string or a chat list, the same kind in every row."""
    kind = _kind(value)
    if kind is None:
        raise DatasetError(
            f"method {method} reads {name} as a string or a list of chat messages "
            f"(role, content), and row {index} of the dataset {source} has "
            f"{type(value).__name__}"
        )
    if kinds.setdefault(name, kind) != kind:
        raise DatasetError(
            f"row {index} of the dataset {source} has {name} as {kind} where row 1 "
            f"has {kinds[name]}; method {method} needs one kind per column"
        )


def _shape(method: str, row: dict[str, Any], index: int, source: str) -> tuple[str, ...]:
    for columns in SHAPES[method]:
        if all(row.get(name) is not None for name in columns):
            return columns
    raise _misfit(method, row, index, source)


def _misfit(
    method: str,
    row: dict[str, Any],
    index: int,
    source: str,
    *,
    expected: tuple[str, ...] | None = None,
) -> DatasetError:
    where = f"row {index} of the dataset {source}" if index > 1 else f"the dataset {source}"
    like = f" (row 1 has {', '.join(expected)})" if expected else ""
    return DatasetError(
        f"method {method} needs rows with columns {NEEDS[method]}; {where} has columns "
        f"{sorted(row) or 'none'}{like}"
    )


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    ):
        return "a messages list"
    return None


def _label(value: Any, index: int, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise DatasetError(
        f"method kto reads label as true (desirable) or false (undesirable), and row "
        f"{index} of the dataset {source} has {value!r}"
    )
