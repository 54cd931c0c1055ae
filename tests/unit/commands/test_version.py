"""``training-agent version``: version, commit, Python, platform, frozen or not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from training_agent import __version__, cli
from training_agent.commands import version

ROOT = Path(__file__).resolve().parents[3]


def test_from_the_source_tree_the_commit_comes_from_git(
    capsys: pytest.CaptureFixture[str],
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()

    assert cli.main(["version"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"training-agent {__version__}"
    assert lines[1] == f"commit    {head}" and head
    assert lines[4] == "frozen    no (running from Python)"


def test_a_baked_commit_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    baked = tmp_path / "_build.json"
    baked.write_text(json.dumps({"version": "9.9.9", "commit": "abc123def456"}))
    monkeypatch.setattr(version, "BUILD_FILE", baked)
    assert version.commit() == "abc123def456"


def test_without_git_or_a_baked_commit_it_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(version, "BUILD_FILE", tmp_path / "absent.json")
    monkeypatch.setattr(
        version, "__file__", str(tmp_path / "site" / "training_agent" / "commands" / "version.py")
    )
    assert version.commit() == "unknown"


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("AMD64", "amd64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("riscv64", "riscv64"),
    ],
)
def test_the_arch_uses_the_release_names(
    monkeypatch: pytest.MonkeyPatch, machine: str, arch: str
) -> None:
    monkeypatch.setattr("platform.machine", lambda: machine)
    assert version.current_arch() == arch
