"""EventReader and EventFollower: the events file becomes sink calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.executor import RecordingSink, wait_until
from training_agent.executor.events import MAX_SKIP_NOTES, EventFollower, EventReader


@pytest.fixture
def reader(sink: RecordingSink, tmp_path: Path) -> EventReader:
    return EventReader(sink, base_dir=tmp_path)


def handle(reader: EventReader, *events: Any) -> None:
    for line_no, event in enumerate(events, start=1):
        reader.handle(line_no, (event if isinstance(event, str) else json.dumps(event)).encode())


def test_metric_keeps_known_numeric_keys_under_backend_names(
    reader: EventReader, sink: RecordingSink
) -> None:
    handle(
        reader,
        {
            "type": "metric",
            "step": 3,
            "epoch": 1,
            "train_loss": 0.5,
            "eval_perplexity": 4,
            "learning_rate": "0.1",
            "accuracy": 0.9,
            "grad_norm": True,
        },
    )
    assert sink.metrics == [{"step": 3, "epoch": 1.0, "train_loss": 0.5, "perplexity": 4.0}]
    assert sink.lines == []


def test_an_explicit_perplexity_wins_over_eval_perplexity(
    reader: EventReader, sink: RecordingSink
) -> None:
    handle(reader, {"type": "metric", "step": 1, "epoch": 0, "perplexity": 2, "eval_perplexity": 3})
    assert sink.metrics[0]["perplexity"] == 2.0


@pytest.mark.parametrize(
    ("step", "epoch", "why"),
    [
        (0, 0.5, "step must be an integer >= 1, got 0"),
        ("3", 0.5, "step must be an integer >= 1, got '3'"),
        (True, 0.5, "step must be an integer >= 1, got True"),
        (1.0, 0.5, "step must be an integer >= 1, got 1.0"),
        (2, None, "epoch must be a number >= 0, got None"),
        (2, -1, "epoch must be a number >= 0, got -1"),
    ],
)
def test_invalid_metrics_are_skipped_with_a_reason(
    reader: EventReader, sink: RecordingSink, step: object, epoch: object, why: str
) -> None:
    handle(reader, {"type": "metric", "step": step, "epoch": epoch, "train_loss": 1.0})
    assert sink.metrics == []
    assert sink.lines == [f"events line 1: metric skipped: {why}"]


def test_non_finite_values_are_dropped_and_said(reader: EventReader, sink: RecordingSink) -> None:
    handle(reader, '{"type": "metric", "step": 5, "epoch": 1, "train_loss": NaN, "grad_norm": 1}')
    assert sink.metrics == [{"step": 5, "epoch": 1.0, "grad_norm": 1.0}]
    assert sink.lines == ["events line 1: train_loss is nan, not reported"]


def test_malformed_and_unknown_lines(reader: EventReader, sink: RecordingSink) -> None:
    handle(reader, {"type": "surprise"}, "{oops", [1, 2], {"no": "type"})
    assert sink.lines == [
        "events line 2 is not valid JSON, skipped: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)",
        "events line 3 is not a JSON object, skipped",
    ]


def test_progress(reader: EventReader, sink: RecordingSink) -> None:
    handle(
        reader,
        {"type": "progress", "total_steps": 400, "total_epochs": 2},
        {"type": "progress", "total_epochs": 1.5},
        {"type": "progress", "total_steps": 0},
    )
    assert sink.progress_calls == [(400, 2.0), (None, 1.5)]
    assert sink.lines == [
        "events line 3: progress skipped: needs total_steps (an integer >= 1) "
        "or total_epochs (a number > 0)"
    ]


def test_checkpoints_and_outputs_are_logged_and_kept(
    reader: EventReader, sink: RecordingSink, tmp_path: Path
) -> None:
    handle(
        reader,
        {"type": "checkpoint", "step": 200, "path": "ckpt-200"},
        {"type": "output", "path": "/abs/model"},
        {"type": "output", "path": "/abs/model"},
        {"type": "output", "path": 7},
    )
    assert reader.outputs == (str(tmp_path / "ckpt-200"), "/abs/model")
    assert sink.lines == [
        f"checkpoint saved at step 200: {tmp_path / 'ckpt-200'}",
        "output saved: /abs/model",
        "output saved: /abs/model",
        "events line 4: output skipped: path must be a non-empty string",
    ]


def test_skip_notes_are_capped(reader: EventReader, sink: RecordingSink) -> None:
    handle(reader, *["{bad"] * (MAX_SKIP_NOTES + 5))
    assert len(sink.lines) == MAX_SKIP_NOTES
    assert sink.lines[-1].endswith("(further skipped events are not reported)")


def test_follower_reads_complete_lines_and_counts_blank_ones(
    reader: EventReader, sink: RecordingSink, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    follower = EventFollower(events, reader)
    follower.read_new()  # no file yet: nothing, no error
    events.write_text('\n{"type": "progress", "total_steps": 4}\n{"type": "metric", "st')
    follower.read_new()
    assert sink.progress_calls == [(4, None)]
    with events.open("a") as f:
        f.write('ep": 1, "epoch": 0.25}\n{bad')
    follower.read_new()
    assert sink.metrics == [{"step": 1, "epoch": 0.25}]
    assert sink.lines == []
    follower.read_new(final=True)  # the trainer exited: the last partial line counts
    assert sink.lines[0].startswith("events line 4 is not valid JSON")


def test_follower_skips_an_oversized_line(
    reader: EventReader, sink: RecordingSink, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    follower = EventFollower(events, reader)
    events.write_bytes(b"x" * (1024 * 1024 + 1))
    follower.read_new()
    with events.open("ab") as f:
        f.write(b"x" * (1024 * 1024 + 1))
    follower.read_new()
    with events.open("ab") as f:
        f.write(b'xx\n{"type": "progress", "total_epochs": 1}\n')
    follower.read_new()
    assert sink.lines == ["events line 1 is longer than 1 MiB, skipped"]
    assert sink.progress_calls == [(None, 1.0)]


async def test_follow_polls_until_cancelled(
    reader: EventReader, sink: RecordingSink, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    follower = EventFollower(events, reader, poll_interval_s=0.01)
    task = asyncio.create_task(follower.follow())
    events.write_text('{"type": "metric", "step": 1, "epoch": 0.1}\n')
    await wait_until(lambda: len(sink.metrics) == 1)
    with events.open("a") as f:
        f.write('{"type": "metric", "step": 2, "epoch": 0.2}\n')
    await wait_until(lambda: len(sink.metrics) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_outputs_keep_their_kind_and_name(
    reader: EventReader, sink: RecordingSink, tmp_path: Path
) -> None:
    handle(
        reader,
        {"type": "checkpoint", "step": 10, "path": "ckpt-10"},
        {"type": "output", "path": "final_adapter", "kind": "adapter", "name": "my-lora"},
        {"type": "output", "path": "export.gguf", "kind": "weights"},
        {"type": "output", "path": "plain.txt"},
    )
    assert [(o.path, o.kind.value, o.name) for o in reader.declared] == [
        (str(tmp_path / "ckpt-10"), "checkpoint", None),
        (str(tmp_path / "final_adapter"), "adapter", "my-lora"),
        (str(tmp_path / "export.gguf"), "file", None),
        (str(tmp_path / "plain.txt"), "file", None),
    ]
    assert (
        "events line 3: output kind 'weights' is not one of adapter, model, checkpoint, file; "
        "taken as file"
    ) in sink.lines
