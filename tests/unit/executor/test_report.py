"""training_agent.report round trip: what a script writes is what the agent reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.executor import RecordingSink
from training_agent import report
from training_agent.executor.events import EventFollower, EventReader


@pytest.fixture
def events_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv(report.EVENTS_FILE_ENV, str(path))
    return path


def test_reports_round_trip(
    events_file: Path, tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report.progress(total_steps=10, total_epochs=2)
    report.metric(1, 0.2, train_loss=0.9, eval_perplexity=3)
    report.checkpoint(1, "ckpt-1")
    report.output(tmp_path / "model")
    reader = EventReader(sink, base_dir=Path("/elsewhere"))
    EventFollower(events_file, reader).read_new()
    assert sink.progress_calls == [(10, 2.0)]
    assert sink.metrics == [{"step": 1, "epoch": 0.2, "train_loss": 0.9, "perplexity": 3.0}]
    # relative paths are resolved where the script ran, not where the agent looks
    assert reader.outputs == (str(tmp_path / "ckpt-1"), str(tmp_path / "model"))


def test_step_zero_is_refused_early(events_file: Path) -> None:
    with pytest.raises(ValueError, match="step must be 1 or more, got 0"):
        report.metric(0, 0.0, train_loss=1.0)
    assert not events_file.exists()


def test_without_the_agent_calls_do_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(report.EVENTS_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    report.progress(total_steps=1)
    report.metric(1, 1.0, train_loss=0.1)
    report.output("model")
    assert list(tmp_path.iterdir()) == []


def test_report_imports_nothing_but_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import training_agent.report; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] "
        "not in sys.stdlib_module_names))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "['training_agent', 'training_agent.report']"


def test_pause_support_round_trips(
    events_file: Path, tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = tmp_path / "control.json"
    monkeypatch.setenv(report.CONTROL_FILE_ENV, str(control))
    assert report.requested_action() is None  # nothing asked yet
    control.write_text('{"action": "pause"}')
    assert report.requested_action() == "pause"
    control.write_text('{"action": "explode"}')
    assert report.requested_action() is None
    control.write_text("[half a write")
    assert report.requested_action() is None

    report.capabilities(pause=True)
    report.paused()
    report.resumed()
    states: list[str] = []
    reader = EventReader(sink, base_dir=tmp_path, on_state=states.append)
    EventFollower(events_file, reader).read_new()
    assert reader.capabilities == {"pause": True}
    assert states == ["paused", "resumed"]


def test_output_carries_kind_and_name(
    events_file: Path, tmp_path: Path, sink: RecordingSink
) -> None:
    report.output(tmp_path / "final_adapter", kind="adapter", name="lora")
    report.output(tmp_path / "notes.txt")
    reader = EventReader(sink, base_dir=tmp_path)
    EventFollower(events_file, reader).read_new()

    assert [(o.kind.value, o.name) for o in reader.declared] == [
        ("adapter", "lora"),
        ("file", None),
    ]
    with pytest.raises(ValueError, match="kind must be one of adapter, model, checkpoint, file"):
        report.output("x", kind="weights")
