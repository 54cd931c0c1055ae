"""``training-agent dashboard`` and ``start --dashboard`` without a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_agent.cli import main


def test_the_dashboard_without_a_terminal_says_what_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINING_AGENT_HOME", str(tmp_path))
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "needs a terminal" in err and "training-agent status" in err


def test_start_dashboard_without_a_terminal_runs_the_agent_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINING_AGENT_HOME", str(tmp_path))
    for name in ("BACKEND_URL", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    # No backend configured: the plain start path runs and explains that.
    assert main(["start", "--dashboard"]) == 2
    captured = capsys.readouterr()
    assert "no terminal for the dashboard" in captured.err
    assert "no backend URL" in captured.err
