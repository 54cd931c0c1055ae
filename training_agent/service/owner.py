"""Files in a directory that a less privileged user owns, written by root without trusting it.

A system service's home (``/var/lib/training-agent``) belongs to its user, and every job
runs as that user: a job can plant a symlink or a FIFO anywhere in it. ``install`` runs
as root, so each of its reads and writes there could become root's. Two rules close that:

- ``acting_as(owner)``: root takes the owner's effective uid and gid (and no
  supplementary groups) for the block, so it can do there exactly what the owner
  could do anyway; a link to ``/etc/shadow`` is then as unreadable as for the owner.
- ``write_private``: a new file is made under a fresh random name with
  ``O_CREAT | O_EXCL`` (``mkstemp``: an existing name or a planted link fails the
  create instead of being followed), 0600, then renamed over the target, which
  replaces a link rather than writing through it.

Rejected: checking with ``lstat`` before writing as root (a race: the link can appear
between the check and the write), and ``chown`` after every write (it follows what
was planted in between).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    """The user a system service runs as."""

    name: str
    uid: int
    gid: int


def find_owner(name: str) -> Owner | None:
    """The user ``name``, or None where it does not exist (or there are no users: Windows)."""
    try:
        import pwd
    except ImportError:  # pragma: no cover - Windows has no system service of ours
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Owner(name, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def acting_as(owner: Owner | None) -> Iterator[None]:
    """Run the block with ``owner``'s effective uid and gid when this process is root.

    Nothing changes for None, for a process that is not root, or for an owner that is
    root. The real uid stays root, so root's identity comes back at the end.
    """
    if owner is None or owner.uid == 0 or not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield
        return
    groups, egid = os.getgroups(), os.getegid()
    os.setgroups([owner.gid])
    os.setegid(owner.gid)
    os.seteuid(owner.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(egid)
        os.setgroups(groups)


def make_home(home: Path, owner: Owner | None) -> None:
    """Create ``home`` (0700) for ``owner`` when it is missing; refuse a planted link.

    Its parent (``/var/lib``) is root's, so only root could have put a link there; a
    link anyway is refused with one sentence rather than followed.
    """
    if home.is_symlink():
        raise OSError(f"{home} is a symbolic link; remove it (a service home is a directory)")
    if home.exists():
        return
    home.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(home, 0o700)
    if owner is not None and hasattr(os, "chown"):
        os.chown(home, owner.uid, owner.gid, follow_symlinks=False)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, owner-only (0600), replacing it atomically.

    Never writes through a link planted at ``path`` or at any temporary name: the
    temporary file is created new (``mkstemp``) and renamed over ``path``.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_text(path: Path) -> str | None:
    """``path``'s text, None when it does not exist; never blocks on a planted FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return handle.read().decode("utf-8")
