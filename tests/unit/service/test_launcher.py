"""The launcher ``install`` writes (sh and Windows .cmd), and the real command runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from training_agent.service.launcher import (
    LAUNCHER_MARK,
    bin_dir,
    launcher_name,
    render_cmd,
    render_sh,
)
from training_agent.service.shell import run_command


def test_the_windows_launcher_is_a_cmd_in_a_per_user_directory() -> None:
    program = (r"C:\Users\ana\AppData\Local\Programs\Python\python.exe", "-m", "training_agent")
    text = render_cmd(program, {"TRAINING_AGENT_HOME": r"D:\agent home"})

    assert launcher_name("win32") == "training-agent.cmd"
    assert (
        bin_dir("win32", {"LOCALAPPDATA": r"C:\Users\ana\AppData\Local"})
        == Path(r"C:\Users\ana\AppData\Local") / "Programs" / "training-agent"
    )
    assert text.split("\r\n") == [
        "@echo off",
        f"rem {LAUNCHER_MARK}",
        r'set "TRAINING_AGENT_HOME=D:\agent home"',
        r"C:\Users\ana\AppData\Local\Programs\Python\python.exe -m training_agent %*",
        "",
    ]
    spaced = render_cmd((r"C:\Program Files\training-agent.exe",), {})
    assert r'"C:\Program Files\training-agent.exe" %*' in spaced


def test_the_sh_launcher_runs_the_agent_with_its_home(tmp_path: Path) -> None:
    launcher = tmp_path / "training-agent"
    home = tmp_path / "it's home"
    launcher.write_text(render_sh((sys.executable, "-m", "training_agent"), {
        "TRAINING_AGENT_HOME": str(home)}))  # fmt: skip
    launcher.chmod(0o755)
    done = subprocess.run(
        [str(launcher), "version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.startswith("training-agent ")
    assert f"# {LAUNCHER_MARK}" in launcher.read_text()


def test_run_command_reports_exit_codes_output_and_missing_tools() -> None:
    ran = run_command([sys.executable, "-c", "import sys; print('no bus'); sys.exit(3)"])
    assert (ran.returncode, ran.why(), ran.ok) == (3, "no bus", False)
    missing = run_command(["training-agent-no-such-tool", "status"])
    assert missing.missing and missing.why() == "training-agent-no-such-tool is not installed"
