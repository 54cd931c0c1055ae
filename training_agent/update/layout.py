"""Where an executable install lives, and how a new build replaces it in one step.

On Linux and macOS the installers (``installer/install.sh``) and the self-update lay
the install directory out like this::

    <install dir>/                     TRAINING_AGENT_INSTALL_DIR, default
      |                                ~/.local/share/training-agent/bin
      training-agent -> versions/0.3.0-k2x9/training-agent     the stable path: a link
      versions/0.3.0-k2x9/training-agent, _internal/            the current build
      versions/0.2.0-a81c/...                                   the one before (rollback)

A new build is copied into a new folder under ``versions`` first; then a new link is
renamed over ``training-agent``, which is atomic: every start sees either the old
build or the new one, never half of each. A running agent keeps its own folder, which
stays untouched (a one-folder build loads modules from its folder while it runs, so
replacing the files under a running agent would break it). The folder before the
current one is kept for a rollback; older ones are removed.

Rejected: renaming the whole install folder aside and the new one into place (two
renames, a moment with no agent at all, and a running agent whose files change under
it); a link to the folder rather than to the executable (``mv`` onto a link to a
folder moves *into* it, and GNU and BSD spell the fix differently).

Windows has no links an ordinary user may make, and a running program's folder cannot
be renamed. There the stable path is a launcher script and the switch is a file::

    <install dir>/                     default %LOCALAPPDATA%\training-agent\bin
      training-agent.cmd               the stable path (on PATH; the scheduled task runs it)
      current                          one line: the name of the current build's folder
      versions/0.3.0-k2x9/training-agent.exe, _internal/

The launcher reads ``current`` and runs that folder's ``training-agent.exe``; when the
agent exits with :data:`RELAUNCH_EXIT` (it switched or rolled back), the launcher reads
``current`` again and starts the build it names now. ``current`` is replaced by a
rename (``os.replace``, atomic on NTFS), so a start sees the old build or the new one.
Untested on real Windows: the suite checks the files, the launcher's text and the task.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

VERSIONS_DIR = "versions"
POINTER = "current"  # Windows: names the current build's folder (the module docstring)
#: The exit code that asks the Windows launcher to start the build ``current`` names now;
#: the daemon's ``EXIT_UPDATE``.
RELAUNCH_EXIT = 75
WINDOWS_LAUNCHER = (
    "@echo off",
    "rem training-agent: runs the build named by the file 'current' (update/layout.py);",
    f"rem exit code {RELAUNCH_EXIT} means the agent switched builds: start the one named now.",
    "setlocal",
    ":run",
    'set /p build=<"%~dp0current"',
    '"%~dp0versions\\%build%\\training-agent.exe" %*',
    f"if errorlevel {RELAUNCH_EXIT} if not errorlevel {RELAUNCH_EXIT + 1} goto run",
    "exit /b %errorlevel%",
)
#: What a new build folder is called while it is being filled (never run from there).
PARTIAL_PREFIX = "."


def executable_name(platform: str = sys.platform) -> str:
    return "training-agent.exe" if platform == "win32" else "training-agent"


@dataclass(frozen=True)
class InstallLayout:
    """An install directory laid out as the module docstring draws it."""

    install_dir: Path
    platform: str = sys.platform

    @classmethod
    def of_executable(cls, executable: Path, platform: str = sys.platform) -> InstallLayout | None:
        """The layout ``executable`` (the real file, links resolved) belongs to; None
        when it is not installed in one (an unpacked archive, an older one-file install)."""
        folder = executable.parent
        if folder.parent.name != VERSIONS_DIR:
            return None
        layout = cls(folder.parent.parent, platform)
        return layout if layout.installed else None

    @property
    def windows(self) -> bool:
        return self.platform == "win32"

    @property
    def installed(self) -> bool:
        """Whether a build was put in place here: the link (Windows: ``current``)."""
        return self.pointer.is_file() if self.windows else self.link.is_symlink()

    @property
    def pointer(self) -> Path:
        """Windows: the file naming the current build's folder."""
        return self.install_dir / POINTER

    @property
    def versions_dir(self) -> Path:
        return self.install_dir / VERSIONS_DIR

    @property
    def link(self) -> Path:
        """The stable path: what launchers and service units run (Windows: the launcher)."""
        name = "training-agent.cmd" if self.windows else executable_name(self.platform)
        return self.install_dir / name

    def current(self) -> Path | None:
        """The build folder the link (Windows: ``current``) names; None without one."""
        if not self.installed:
            return None
        if self.windows:
            return (self.versions_dir / self.pointer.read_text(encoding="ascii").strip()).resolve()
        return self.link.resolve().parent

    def new_folder(self, version: str) -> Path:
        """An empty, hidden folder under ``versions`` to copy a build into."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        name = f"{PARTIAL_PREFIX}{version}-{secrets.token_hex(3)}"
        folder = self.versions_dir / name
        folder.mkdir(mode=0o755)
        return folder

    def activate(self, filled: Path) -> Path:
        """Make the build in ``filled`` (from :meth:`new_folder`) the current one: name
        it visibly, then rename a new link over the stable path. The build folder."""
        final = filled.with_name(filled.name.removeprefix(PARTIAL_PREFIX))
        os.replace(filled, final)
        self.point_at(final)
        return final

    def point_at(self, folder: Path) -> None:
        """Rename a link to ``folder``'s executable over the stable path (atomic); on
        Windows a new ``current`` naming ``folder`` over the old one."""
        if self.windows:
            self._write(self.pointer, folder.name + "\r\n")
            self._write_launcher()
            return
        target = Path(VERSIONS_DIR) / folder.name / executable_name(self.platform)
        staged = self.install_dir / f".{executable_name(self.platform)}.new"
        staged.unlink(missing_ok=True)
        staged.symlink_to(target)
        os.replace(staged, self.link)

    def _write(self, path: Path, text: str) -> None:
        staged = path.with_name(f".{path.name}.new")
        staged.write_bytes(text.encode("ascii"))
        os.replace(staged, path)

    def _write_launcher(self) -> None:
        # Only when it differs: cmd.exe reads a running batch file line by line, by offset,
        # so the launcher the task is running now must not change under it.
        text = "\r\n".join(WINDOWS_LAUNCHER) + "\r\n"
        if not self.link.is_file() or self.link.read_bytes() != text.encode("ascii"):
            self._write(self.link, text)

    def prune(self, *, keep: tuple[Path | None, ...]) -> list[Path]:
        """Remove every build folder but ``keep`` (and unfinished ones); the removed."""
        if not self.versions_dir.is_dir():
            return []
        kept = {path.resolve() for path in keep if path is not None}
        removed = []
        for folder in sorted(self.versions_dir.iterdir()):
            if folder.is_dir() and not folder.is_symlink() and folder.resolve() not in kept:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def stable_executable(executable: Path) -> Path:
    """The path launchers and service units should run for ``executable``: the install
    directory's link when it is installed in a layout, else the file itself.

    >>> stable_executable(Path("/opt/unpacked/training-agent"))
    PosixPath('/opt/unpacked/training-agent')
    """
    real = executable.resolve()
    layout = InstallLayout.of_executable(real)
    return layout.link if layout is not None else real
