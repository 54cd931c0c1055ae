"""Downloaded datasets, kept once per content: ``<root>/<sha256>/<filename>``.

Both the daemon (the backend's datasets) and the trainer process (http(s) URLs) use
it, so it needs only the standard library. A file enters the cache only by ``adopt``:
downloaded under a temporary name in ``<root>/.partial/``, checked by the caller, then
renamed into place, so a half-written or corrupt file is never found by ``find``. The
file name is kept because the trainer reads a dataset's format from it (``.jsonl.gz``).

    cache = DatasetCache(paths.cache_dir / "datasets")
    if (hit := cache.find(sha256, "train.jsonl")) is None:
        partial = cache.partial_path()
        ...download to partial, check its SHA-256...
        hit = cache.adopt(partial, sha256, "train.jsonl")

URLs are remembered in ``<root>/urls/<sha256 of the URL>`` (the content's SHA-256 and
file name), so a URL is fetched once and the same content under two names or from two
sources is stored once.

Like every other directory of the agent, the cache is private: its folders are 0700 and
its files 0600 (a dataset can be a company's data), whatever the umask; a cache an older
version left readable is narrowed the next time it is written to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from training_agent.paths import private_dir

_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
DEFAULT_NAME = "dataset"


def safe_filename(name: str) -> str:
    """``name``'s last path part with only ``[A-Za-z0-9._-]``, never empty or hidden.

    >>> safe_filename("../my data/train set.jsonl.gz")
    'train_set.jsonl.gz'
    """
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", last).lstrip(".")[:200] or DEFAULT_NAME


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


class DatasetCache:
    """A content-addressed store of dataset files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, sha256: str, filename: str) -> Path:
        """Where the file with ``sha256`` lives under ``filename`` (it may not exist)."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
        return self.root / sha256 / safe_filename(filename)

    def find(self, sha256: str, filename: str, *, size_bytes: int | None = None) -> Path | None:
        """The cached file with ``sha256`` named ``filename``, or None.

        The same content cached under another name is linked (or copied) to this one:
        no download. A file whose size is not ``size_bytes`` is treated as damaged.
        """
        target = self.entry(sha256, filename)
        for candidate in _siblings(target):
            if size_bytes is not None and candidate.stat().st_size != size_bytes:
                continue
            if candidate != target:
                _link_or_copy(candidate, target)
            return target
        return None

    def partial_path(self) -> Path:
        """A fresh temporary file name inside the cache (same disk: the rename is atomic)."""
        directory = self.root / ".partial"
        private_dir(self.root)  # an older version's 0755 root is narrowed here
        private_dir(directory)
        return directory / uuid.uuid4().hex

    def adopt(self, partial: Path, sha256: str, filename: str) -> Path:
        """Move the checked file ``partial`` into the cache; returns its place there."""
        target = self.entry(sha256, filename)
        private_dir(target.parent)
        os.chmod(partial, 0o600)
        os.replace(partial, target)  # a concurrent identical download simply wins or loses
        return target

    def remember_url(self, url: str, sha256: str, filename: str) -> None:
        """Note that ``url`` served the content ``sha256`` (saved as ``filename``)."""
        index = self._url_index(url)
        private_dir(index.parent)
        partial = self.partial_path()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({"sha256": sha256, "filename": filename}))
        os.replace(partial, index)

    def find_url(self, url: str) -> Path | None:
        """The cached file ``url`` served before, or None."""
        try:
            noted = json.loads(self._url_index(url).read_text("utf-8"))
            return self.find(str(noted["sha256"]), str(noted["filename"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _url_index(self, url: str) -> Path:
        return self.root / "urls" / hashlib.sha256(url.encode("utf-8")).hexdigest()


def _siblings(target: Path) -> list[Path]:
    """Files already cached with the same content, ``target`` first when it exists."""
    if not target.parent.is_dir():
        return []
    others = sorted(
        p
        for p in target.parent.iterdir()
        if p.is_file() and p != target and not p.name.startswith(".")
    )
    return ([target] if target.is_file() else []) + others


def _link_or_copy(source: Path, target: Path) -> None:
    partial = source.with_name(f".{uuid.uuid4().hex}")
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.chmod(partial, 0o600)
    os.replace(partial, target)
