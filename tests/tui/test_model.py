"""The dashboard's model and its pure renderings (no app needed)."""

from __future__ import annotations

from tests.support.fake_status import NOW, snapshot
from training_agent.status.client import StatusEvent
from training_agent.tui.model import Attach, DashboardModel, JobLog
from training_agent.tui.widgets.connection_bar import render_connection
from training_agent.tui.widgets.loss_chart import draw
from training_agent.tui.widgets.machine_panel import render_machine


def test_log_lines_fetched_and_streamed_are_kept_once_and_in_order() -> None:
    log = JobLog()
    assert log.add(0, ["a", "b", "c"]) == ["a", "b", "c"]
    assert log.add(1, ["b", "c", "d"]) == ["d"]  # an event overlapping the fetched tail
    assert log.add(None, ["e"]) == ["e"]  # an older agent: no numbering, appended
    assert list(log.lines) == ["a", "b", "c", "d", "e"]
    assert log.total == 5


def test_points_are_keyed_by_step_and_merged() -> None:
    model = DashboardModel()
    model.add_points("j", [{"step": 2, "train_loss": 1.0}, {"step": 1, "train_loss": 2.0}])
    model.apply(StatusEvent("metrics", {"job_id": "j", "points": [{"step": 2, "eval_loss": 3}]}))
    assert model.series("j", "train_loss") == [(1, 2.0), (2, 1.0)]
    assert model.series("j", "eval_loss") == [(2, 3.0)]


def test_connection_states_read_as_sentences() -> None:
    model = DashboardModel(attach=Attach.ATTACHED)
    model.snapshot = snapshot(state="unreachable", reason="timed out", next_retry_at=NOW + 75)
    text = render_connection(model, NOW).plain
    assert "backend unreachable · retry in 1m 15s" in text
    assert "timed out" in text
    model.snapshot = snapshot(state="revoked", reason="removed on the platform")
    assert "agent revoked on the platform" in render_connection(model, NOW).plain
    model.snapshot["draining"] = True
    assert "draining" in render_connection(model, NOW).plain
    lost = DashboardModel(attach=Attach.NO_AGENT, attach_reason="no status.json")
    assert render_connection(lost, NOW).plain == "✕ no agent is running here\nno status.json"


def test_the_chart_fits_its_area_and_labels_both_series() -> None:
    train = [(step, 2.0 / step) for step in range(1, 101)]
    chart = draw((train, [(50, 0.5), (100, 0.3)]), 40, 6)
    lines = chart.plain.splitlines()
    assert len(lines) == 6
    assert all(len(line) <= 40 for line in lines)
    assert lines[0].startswith("     2 ")  # the top of the y axis
    assert "train 0.02" in lines[-1] and "eval 0.3" in lines[-1]
    assert any("\u2800" < ch <= "\u28ff" for ch in lines[0])  # braille dots drawn
    assert draw(((), ()), 40, 6).plain == "no loss reported yet"


def test_machine_panel_falls_back_to_the_snapshot_resources() -> None:
    offered = {"cpu_count": 4, "memory_gb": 16.0, "memory_available_gb": 6.0, "gpus": []}
    text = render_machine(None, offered).plain
    assert "RAM 10.0/16.0 GB" in text
    assert "no GPU seen" in text


def test_machine_panel_says_why_there_is_no_gpu_and_names_the_driver() -> None:
    none = render_machine({"gpus": [], "gpu_note": "no NVIDIA driver"}, {}).plain
    assert none.splitlines()[-1] == "no NVIDIA driver"
    nvidia = {"index": 0, "memory_gb": 24.0, "memory_used_gb": 4.0, "utilization_percent": 50}
    shown = render_machine({"gpus": [nvidia], "gpu_driver": "550.54.15"}, {}).plain
    assert shown.splitlines()[-2:] == [
        "GPU0 ███░░░  50% 4.0/24.0G",
        "driver 550.54.15",
    ]
    mps = {"index": 0, "kind": "mps", "memory_gb": 32.0, "memory_used_gb": 12.0}
    assert render_machine({"gpus": [mps]}, {}).plain.splitlines()[-1] == "mps  12.0/32.0G"
