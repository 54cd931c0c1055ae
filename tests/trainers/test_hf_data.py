"""Dataset formats and row shapes of the Hugging Face trainer."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from training_agent.job_policy import JobPolicy
from training_agent.trainers import hf_data

ROWS: dict[str, dict[str, Any]] = {
    "text": {"text": "hello world"},
    "messages": {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"},
        ]
    },
    "conversations": {
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]
    },
    "prompt_completion": {"prompt": "2+2=", "completion": "4"},
    "alpaca": {"instruction": "add", "input": "2 2", "output": "4"},
}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    fmt = hf_data.detect_format(path)
    if fmt == "jsonl":
        data = "\n".join(json.dumps(r) for r in rows).encode()
    elif fmt == "json":
        data = json.dumps(rows).encode()
    elif fmt == "csv":
        path.with_suffix(".tmp").unlink(missing_ok=True)
        lines: list[str] = []
        writer = csv.DictWriter(_Lines(lines), fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        data = "".join(lines).encode()
    else:
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        data = buffer.getvalue()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


class _Lines:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


@pytest.mark.parametrize(
    "name", ["d.jsonl", "d.json", "d.csv", "d.parquet", "d.jsonl.gz", "d.csv.gz", "d.parquet.gz"]
)
def test_every_format_reads_back_its_rows(tmp_path: Path, name: str) -> None:
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(3)]
    path = write(tmp_path / name, rows)
    assert hf_data.load_rows(hf_data.data_files(path, None)) == rows


def test_a_directory_reads_its_split_files(tmp_path: Path) -> None:
    write(tmp_path / "train.jsonl", [{"text": "a"}])
    write(tmp_path / "validation.jsonl", [{"text": "b"}])
    assert hf_data.load_rows(hf_data.data_files(tmp_path, None)) == [{"text": "a"}]
    assert hf_data.load_rows(hf_data.data_files(tmp_path, "validation")) == [{"text": "b"}]


def test_unknown_columns_fail_with_path_format_and_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", [{"question": "q", "answer": "a"}])
    with pytest.raises(hf_data.DatasetError) as caught:
        hf_data.load_rows([path])
    message = str(caught.value)
    assert str(path) in message and "format csv" in message
    assert "['answer', 'question']" in message


def test_a_missing_dataset_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(hf_data.DatasetError, match="does not exist; check dataset_path"):
        hf_data.fetch(str(tmp_path / "nope.jsonl"), tmp_path)


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(str(tiny_model))
    loaded.chat_template = hf_data.DEFAULT_CHAT_TEMPLATE
    return loaded


@pytest.mark.parametrize("shape", list(ROWS))
def test_every_row_shape_trains_only_on_its_answer(tokenizer: Any, shape: str) -> None:
    example = hf_data.tokenize_row(ROWS[shape], tokenizer, max_length=256)
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels) == len(example["attention_mask"]) > 0
    trained = tokenizer.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100])
    expected = {
        "text": "hello world",
        "messages": "yo",
        "conversations": "yo",
        "prompt_completion": "4",
        "alpaca": "4",
    }[shape]
    assert trained.replace("</s>", "").strip() == expected
    if shape != "text":
        assert labels[0] == -100  # the prompt carries no loss


def test_max_length_truncates(tokenizer: Any) -> None:
    example = hf_data.tokenize_row({"text": "x" * 100}, tokenizer, max_length=16)
    assert len(example["input_ids"]) == 16


# The test server is on loopback, which a job may reach only where the owner allows it.
LOOPBACK_ALLOWED = JobPolicy(allow_private_urls=True)


def test_a_url_is_downloaded_once_into_the_cache(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    write(served / "d.jsonl.gz", [{"text": "a"}])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/d.jsonl.gz"
        path = hf_data.fetch(url, tmp_path / "cache", LOOPBACK_ALLOWED)
        assert hf_data.load_rows([path]) == [{"text": "a"}]
        (served / "d.jsonl.gz").unlink()
        assert hf_data.fetch(url, tmp_path / "cache") == path  # cached, not fetched again
        with pytest.raises(hf_data.DatasetError, match="cannot download the dataset"):
            hf_data.fetch(url + "x", tmp_path / "cache", LOOPBACK_ALLOWED)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sample(ids: list[int], labels: list[int]) -> dict[str, Any]:
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def test_packing_fills_blocks_and_masks_each_boundary() -> None:
    m = hf_data.IGNORE_INDEX
    samples = [
        sample([1, 2, 3], [m, 2, 3]),  # a prompt token without loss
        sample([4, 5], [4, 5]),
        sample([6, 7, 8, 9], [m, m, 8, 9]),
        sample([], []),
        sample([10], [10]),
    ]
    blocks = hf_data.pack(samples, max_length=6)
    assert [b["input_ids"] for b in blocks] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    # Each sample's first token after another sample carries no loss; masks inside stay.
    assert [b["labels"] for b in blocks] == [[m, 2, 3, m, 5], [m, m, 8, 9, m]]
    assert all(b["attention_mask"] == [1] * len(b["input_ids"]) for b in blocks)


def test_packing_real_rows_keeps_every_trained_token(tokenizer: Any) -> None:
    rows = [ROWS[shape] for shape in ROWS] * 3
    samples = [hf_data.tokenize_row(r, tokenizer, max_length=64) for r in rows]
    blocks = hf_data.pack(samples, max_length=64)
    assert len(blocks) < len(samples) and all(len(b["input_ids"]) <= 64 for b in blocks)
    assert sum(len(b["input_ids"]) for b in blocks) == sum(len(s["input_ids"]) for s in samples)
    trained = sum(lab != -100 for b in blocks for lab in b["labels"])
    alone = sum(lab != -100 for s in samples for lab in s["labels"])
    text_starts = sum(1 for r in rows if "text" in r) - 1  # at most this many masked
    assert alone - text_starts <= trained <= alone


def test_a_url_to_this_machine_or_past_the_cap_is_refused(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    write(served / "d.jsonl", [{"text": "a" * 100}])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/d.jsonl"
        with pytest.raises(hf_data.DatasetError, match="allow_private_urls"):
            hf_data.fetch(url, tmp_path / "cache", JobPolicy())  # the trainer's default
        small = JobPolicy(allow_private_urls=True, max_download_bytes=50)
        with pytest.raises(hf_data.DatasetError, match="larger than max_dataset_download_gb"):
            hf_data.fetch(url, tmp_path / "cache", small)
        assert not list((tmp_path / "cache" / ".partial").iterdir())  # nothing half-written
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_file_that_is_not_its_format_is_never_quoted(tmp_path: Path) -> None:
    # A parser's message can quote the file; the job log must not become a way to read it.
    for name, content in (("a.jsonl.gz", b"Zq-secret"), ("b.jsonl", b"Zq\xff-secret")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(hf_data.DatasetError) as refused:
            hf_data.read_rows(path)
        message = str(refused.value)
        assert message.startswith(f"cannot read the dataset {path} as jsonl: ")
        assert "Zq" not in message and "0xff" not in message and "secret" not in message
