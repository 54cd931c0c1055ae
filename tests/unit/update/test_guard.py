"""A new build on trial that crashes, exits with an error or keeps being restarted
before its first successful poll is rolled back at start, and the old build runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from training_agent.update.guard import MAX_TRIAL_STARTS, RECORD_FILE, guarded_start
from training_agent.update.layout import InstallLayout
from training_agent.update.record import Trial, UpdateRecord

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the linked layout is Linux and macOS")


def installed(tmp_path: Path) -> tuple[InstallLayout, Path, Path, UpdateRecord]:
    """0.2.0 then 0.3.0 installed, 0.3.0 current and on trial; the layout, both
    executables and the record."""
    layout = InstallLayout(tmp_path / "bin", platform="linux")
    folders = []
    for version in ("0.2.0", "0.3.0"):
        staged = layout.new_folder(version)
        (staged / "training-agent").write_text(f"#!/bin/sh\necho {version}\n")
        folders.append(layout.activate(staged))
    record = UpdateRecord.load(tmp_path / "state" / RECORD_FILE)
    record.trial = Trial("0.2.0", str(folders[0]), "0.3.0", str(folders[1]), deadline=2000.0)
    record.save()
    return layout, folders[0] / "training-agent", folders[1] / "training-agent", record


def run_guarded(
    tmp_path: Path, executable: Path, start: Callable[[], int], now: float = 1000.0
) -> tuple[int, list[Path]]:
    """``start`` through the guard as ``executable``; the code and what it executed."""
    executed: list[Path] = []
    code = guarded_start(
        start,
        state_dir=tmp_path / "state",
        version="0.3.0",
        executable=executable,
        clock=lambda: now,
        execute=executed.append,
    )
    return code, executed


def test_a_build_on_trial_that_raises_at_start_is_rolled_back(tmp_path: Path) -> None:
    layout, old, new, record = installed(tmp_path)

    def start() -> int:
        raise ImportError("No module named '_sqlite3'")

    with pytest.raises(ImportError):
        run_guarded(tmp_path, new, start)

    assert layout.current() == old.parent
    after = UpdateRecord.load(record.path)
    assert after.trial is None
    assert after.attempts["0.3.0"]["outcome"] == "failed"
    assert "No module named '_sqlite3'" in after.attempts["0.3.0"]["reason"]


def test_a_build_on_trial_that_exits_with_an_error_is_rolled_back_and_the_old_one_runs(
    tmp_path: Path,
) -> None:
    layout, old, new, _ = installed(tmp_path)

    code, executed = run_guarded(tmp_path, new, lambda: 3)

    assert code == 3 and executed == [layout.link]
    assert layout.current() == old.parent


def test_too_many_starts_or_a_passed_deadline_roll_back_before_starting(tmp_path: Path) -> None:
    layout, old, new, _ = installed(tmp_path)
    started: list[bool] = []

    def start() -> int:
        started.append(True)
        raise KeyboardInterrupt  # a service manager stopping a hung start

    for _ in range(MAX_TRIAL_STARTS):
        with pytest.raises(KeyboardInterrupt):
            run_guarded(tmp_path, new, start)
        layout.point_at(new.parent)  # as if the crash had left it (a kill -9)
        record = UpdateRecord.load(tmp_path / "state" / RECORD_FILE)
        record.trial = Trial("0.2.0", str(old.parent), "0.3.0", str(new.parent), 2000.0, _ + 1)
        record.save()

    code, executed = run_guarded(tmp_path, new, start)

    assert code == 1 and executed == [layout.link] and len(started) == MAX_TRIAL_STARTS
    assert layout.current() == old.parent
    reason = UpdateRecord.load(tmp_path / "state" / RECORD_FILE).attempts["0.3.0"]["reason"]
    assert reason.endswith(f"(it was started {MAX_TRIAL_STARTS + 1} times)")


def test_a_confirmed_build_and_the_old_build_start_as_usual(tmp_path: Path) -> None:
    layout, old, new, record = installed(tmp_path)

    def confirmed() -> int:
        UpdateRecord.load(record.path).save()  # unchanged: still on trial
        fresh = UpdateRecord.load(record.path)
        fresh.trial = None
        fresh.save()
        raise RuntimeError("a later failure is not the update's")

    with pytest.raises(RuntimeError):
        run_guarded(tmp_path, new, confirmed)
    assert layout.current() == new.parent  # no rollback after the first successful poll

    code, executed = run_guarded(tmp_path, old, lambda: 0)
    assert (code, executed) == (0, [])
