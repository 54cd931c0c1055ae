"""A metric's ``extra`` series from the trainer to the backend: written by
``report.metric``, bounded by the event reader, and sent only where ``metrics_extra`` is
offered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.executor import RecordingSink
from tests.support.fake_backend import FakeBackend
from training_agent import report
from training_agent.api import BackendClient
from training_agent.executor.events import EventFollower, EventReader
from training_agent.reporting import extra
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader

METRICS = "POST /api/training/local/metrics"


def test_extra_series_travel_from_report_to_the_sink(
    tmp_path: Path, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(report.EVENTS_FILE_ENV, str(events))
    margins = {"rewards/margins": 0.25, "kl": float("nan"), "reward": 2}
    report.metric(4, 0.5, train_loss=0.7, extra=margins)
    report.metric(5, 0.6, train_loss=0.6)
    assert json.loads(events.read_text().splitlines()[0])["extra"] == {
        "rewards/margins": 0.25,
        "reward": 2.0,
    }
    EventFollower(events, EventReader(sink, base_dir=tmp_path)).read_new()
    assert sink.metrics == [
        {
            "step": 4,
            "epoch": 0.5,
            "train_loss": 0.7,
            "extra": {"rewards/margins": 0.25, "reward": 2.0},
        },
        {"step": 5, "epoch": 0.6, "train_loss": 0.6},
    ]
    with pytest.raises(TypeError, match="metric train_loss must be a number"):
        report.metric(6, 0.7, train_loss={"a": 1.0})


def test_the_reader_keeps_a_bounded_set_of_named_numbers() -> None:
    series = {f"s{i}": float(i) for i in range(100)}
    kept = extra.clean(series | {"": 1.0, "x" * 65: 1.0})
    assert list(kept) == [f"s{i}" for i in range(extra.MAX_SERIES)]
    assert extra.clean({"ok": 1, "flag": True, "text": "1", "inf": float("inf")}) == {"ok": 1.0}
    assert extra.clean(["not", "a", "mapping"]) == {}


@pytest.mark.parametrize(("features", "sent"), [((), None), ((extra.FEATURE,), {"kl": 0.1})])
async def test_extra_goes_only_to_a_backend_that_offers_it(
    tmp_path: Path,
    client: BackendClient,
    backend: FakeBackend,
    features: tuple[str, ...],
    sent: dict[str, float] | None,
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.open_job("j1", "token-1")
    outbox.append_metric("j1", {"step": 1, "epoch": 0.5, "train_loss": 2.0, "extra": {"kl": 0.1}})

    async def no_sleep(_delay: float) -> None:
        await asyncio.sleep(0)

    uploader = Uploader(
        outbox=outbox, client=client, features=lambda: frozenset(features), sleep=no_sleep
    )
    await uploader.drain_once()
    (point,) = backend.calls(METRICS)[0]["metrics"]
    assert point.get("extra") == sent
    assert point["train_loss"] == 2.0
    assert outbox.pending_metrics("j1", limit=10) == []  # delivered either way
