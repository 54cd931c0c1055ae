"""Training data for the Hugging Face trainer: read rows, then turn them into token ids.

Sources: a local file, a local directory (its data files; ``train_split`` / ``eval_split``
name a file by its stem), or an http(s) URL (downloaded once into the agent's dataset cache,
kept by content SHA-256). Formats by file name: ``.jsonl``, ``.json``, ``.csv``, ``.parquet``,
``.txt`` (one ``text`` row per file), each optionally ``.gz``. Row shapes: ``text``; chat
``messages`` (role/content, rendered with the tokenizer's chat template, loss on the
assistant turns only); ShareGPT ``conversations``
(from/value); ``prompt``/``completion``; ``instruction``/``input``/``output`` (loss on the
completion or output only). Anything else raises ``DatasetError`` with the path, the
detected format and the columns found.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from training_agent import url_guard
from training_agent.job_policy import JobPolicy

FORMATS = ("jsonl", "json", "csv", "parquet", "txt")
IGNORE_INDEX = -100
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{input_block}### Response:\n"
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
# Used when a tokenizer has none: each turn as "<|role|>\ncontent\n".
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class DatasetError(ValueError):
    """The dataset cannot be used; the message says where and why."""


class Tokenizer(Protocol):
    eos_token_id: int | None

    def __call__(self, text: str, *, add_special_tokens: bool = ...) -> Any: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def detect_format(path: Path) -> str:
    """The format a file name says (``jsonl``, ``json``, ``csv``, ``parquet``), or ``unknown``."""
    suffixes = [s.lower().lstrip(".") for s in path.suffixes]
    if suffixes and suffixes[-1] == "gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes and suffixes[-1] in FORMATS else "unknown"


def fetch(source: str, cache_dir: Path, policy: JobPolicy | None = None) -> Path:
    """A local path for ``source``: itself, or an http(s) URL fetched into ``cache_dir``.

    A URL is downloaded once: its content is kept by SHA-256 in the agent's dataset
    cache (``training_agent.dataset_cache``), shared by every job on this machine. It is
    fetched within the owner's ``policy`` (default: the one the agent gave this trainer):
    public addresses only, at most ``max_dataset_download_gb`` (``url_guard``).
    """
    if not source.startswith(("http://", "https://")):
        path = Path(source).expanduser()
        if not path.exists():
            raise DatasetError(f"the dataset {source} does not exist; check dataset_path")
        return path
    from training_agent.dataset_cache import DatasetCache

    cache = DatasetCache(cache_dir)
    if (hit := cache.find_url(source)) is not None:
        print(f"dataset {source} found in the cache")
        return hit
    name = source.rsplit("/", 1)[-1].split("?", 1)[0] or "dataset"
    policy = policy or JobPolicy.from_env(os.environ)
    try:
        partial = cache.partial_path()
        sha256 = _download(source, partial, policy)
        path = cache.adopt(partial, sha256, name)
        cache.remember_url(source, sha256, name)
    except url_guard.UrlRefused as exc:
        raise DatasetError(str(exc)) from exc
    except OSError as exc:  # urllib's URLError is an OSError too
        raise DatasetError(f"cannot download the dataset {source}: {exc}") from exc
    return path


def _download(url: str, target: Path, policy: JobPolicy) -> str:
    """Stream ``url`` into ``target``; its SHA-256. A failed download leaves no file."""
    digest = hashlib.sha256()
    try:
        with (
            url_guard.open_url(url, allow_private=policy.allow_private_urls) as response,
            target.open("xb") as out,
        ):

            def write(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            url_guard.copy_capped(response, write, max_bytes=policy.max_download_bytes, url=url)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def data_files(path: Path, split: str | None) -> list[Path]:
    """The data files of ``path``: the file itself, or a directory's files of ``split``."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and detect_format(p) != "unknown")
    if split is not None:
        files = [p for p in files if p.name.split(".")[0] == split]
    elif any(p.name.startswith("train") for p in files):
        files = [p for p in files if p.name.startswith("train")]
    if not files:
        wanted = f" for split {split!r}" if split else ""
        raise DatasetError(
            f"the dataset directory {path} has no jsonl, json, csv, parquet or txt file{wanted}"
        )
    return files


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of one data file, as dicts."""
    fmt = detect_format(path)
    try:
        raw = path.read_bytes()
        if path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
        if fmt == "jsonl":
            rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        elif fmt == "json":
            loaded = json.loads(raw.decode("utf-8"))
            rows = loaded.get("data", loaded) if isinstance(loaded, dict) else loaded
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(io.BytesIO(raw)).to_pylist()
        elif fmt == "txt":
            rows = [{"text": raw.decode("utf-8")}]  # one document per file
        else:
            raise DatasetError(
                f"cannot read the dataset {path}: unknown format (name it .jsonl, .json, "
                ".csv, .parquet or .txt, optionally .gz)"
            )
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read the dataset {path} as {fmt}: {_reason(exc, fmt)}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DatasetError(f"cannot read the dataset {path} as {fmt}: rows must be objects")
    return rows


def _reason(exc: Exception, fmt: str) -> str:
    """What went wrong reading a data file, never a piece of its content (which a parser's
    message can quote): the job log is not a way to read a file."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return f"{type(exc).__name__}; check that it is a valid {fmt} file"


def row_shape(rows: list[dict[str, Any]]) -> str | None:
    """The row shape of a dataset by its first row's columns, or None."""
    columns = set(rows[0]) if rows else set()
    for shape, needed in (
        ("messages", {"messages"}),
        ("conversations", {"conversations"}),
        ("prompt_completion", {"prompt", "completion"}),
        ("alpaca", {"instruction", "output"}),
        ("text", {"text"}),
    ):
        if needed <= columns:
            return shape
    return None


def read_all(files: Iterable[Path]) -> list[dict[str, Any]]:
    """The rows of every file in ``files``, in order (the methods check their shape)."""
    rows: list[dict[str, Any]] = []
    for path in files:
        rows += read_rows(path)
    return rows


def load_rows(files: Iterable[Path]) -> list[dict[str, Any]]:
    """The rows of ``files``; raises ``DatasetError`` when their shape is not one sft trains on."""
    files = list(files)
    rows = read_all(files)
    if row_shape(rows) is None:
        columns = sorted(rows[0]) if rows else []
        raise DatasetError(
            f"cannot train on the dataset {files[0]} (format {detect_format(files[0])}): "
            f"columns found {columns or 'none (empty)'}; expected text, messages, "
            "conversations, prompt/completion or instruction/input/output"
        )
    return rows


def tokenize_row(row: dict[str, Any], tokenizer: Tokenizer, max_length: int) -> dict[str, Any]:
    """``input_ids``, ``attention_mask`` and ``labels`` (-100 where no loss) for one row."""
    shape = row_shape([row])
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if shape == "text":
        ids = _ids(tokenizer, str(row["text"])) + eos
        labels = list(ids)
    elif shape in ("messages", "conversations"):
        ids, labels = _chat(tokenizer, _messages(row))
    else:
        prompt, completion = _prompt_completion(row)
        prompt_ids = _ids(tokenizer, prompt)
        completion_ids = _ids(tokenizer, completion) + eos
        ids = prompt_ids + completion_ids
        labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in row:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"]]
    return [
        {"role": SHAREGPT_ROLES.get(str(m["from"]), str(m["from"])), "content": str(m["value"])}
        for m in row["conversations"]
    ]


def _chat(tokenizer: Tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat, with labels only on each assistant turn's tokens."""
    ids = _render(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE_INDEX] * len(ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:index], generation_prompt=True))
        end = len(_render(tokenizer, messages[: index + 1], generation_prompt=False))
        labels[start:end] = ids[start:end]
    return ids, labels


def _render(
    tokenizer: Tokenizer, messages: list[dict[str, str]], *, generation_prompt: bool
) -> list[int]:
    if not messages:
        return []
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True
    )
    return list(rendered["input_ids"])


def _prompt_completion(row: dict[str, Any]) -> tuple[str, str]:
    if "prompt" in row:
        return str(row["prompt"]), str(row["completion"])
    extra = str(row.get("input") or "")
    input_block = f"### Input:\n{extra}\n\n" if extra else ""
    prompt = ALPACA_PROMPT.format(instruction=row["instruction"], input_block=input_block)
    return prompt, str(row["output"])


def pack(samples: Iterable[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Tokenized samples packed into blocks of at most ``max_length`` tokens (``packing``).

    Samples are taken in order and never split (each is at most ``max_length`` already):
    a block is closed when the next sample would not fit. Inside a block, the first
    token of every sample after the first carries no loss (label -100): it would be
    predicted from the end of an unrelated sample. Masked labels inside a sample (a
    prompt, a user turn) stay masked. The collator pads the last, shorter blocks.
    """
    blocks: list[dict[str, Any]] = []
    ids: list[int] = []
    labels: list[int] = []
    for sample in samples:
        sample_ids, sample_labels = list(sample["input_ids"]), list(sample["labels"])
        if not sample_ids:
            continue
        if ids and len(ids) + len(sample_ids) > max_length:
            blocks.append(_block(ids, labels))
            ids, labels = [], []
        if ids:
            sample_labels[0] = IGNORE_INDEX
        ids += sample_ids[:max_length]
        labels += sample_labels[:max_length]
    if ids:
        blocks.append(_block(ids, labels))
    return blocks


def _block(ids: list[int], labels: list[int]) -> dict[str, Any]:
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
