"""The local store writes the aligned part of a chunk with O_DIRECT and the rest through
the page cache; the bytes on disk are the same either way, and a file system that
refuses O_DIRECT gets every byte through the page cache."""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import pytest

from training_backend.services.artifact_store import local
from training_backend.services.artifact_store.local import (
    DIRECT_ALIGNMENT,
    LocalStore,
    _direct_length,
)

BLOCK = DIRECT_ALIGNMENT


def _aligned(data: bytes) -> memoryview:
    buffer = mmap.mmap(-1, len(data))  # page-aligned, like the upload route's buffers
    buffer[:] = data
    return memoryview(buffer)


def test_only_an_aligned_writable_start_goes_direct() -> None:
    view = _aligned(bytes(3 * BLOCK))
    assert _direct_length(view, 0) == 3 * BLOCK
    assert _direct_length(view[: 2 * BLOCK + 5], BLOCK) == 2 * BLOCK  # the tail is buffered
    assert _direct_length(view, 7) == 0  # the file offset is not on a boundary
    assert _direct_length(view[1:], 0) == 0  # nor is the memory
    assert _direct_length(view[: BLOCK - 1], 0) == 0  # less than one block
    assert _direct_length(memoryview(bytes(3 * BLOCK)), 0) == 0  # read-only: address unknown


def test_chunks_written_direct_and_buffered_make_the_exact_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = local._write_all
    writes: list[tuple[bool, int, int]] = []

    def noted(path: Path, flags: int, view: memoryview, offset: int) -> None:
        writes.append((bool(flags & os.O_DIRECT), offset, len(view)))
        real_write_all(path, flags, view, offset)

    monkeypatch.setattr(local, "_write_all", noted)
    content = os.urandom(5 * BLOCK + 123)
    store = LocalStore(tmp_path)
    store.write("k", {}, offset=0, data=_aligned(content[: 2 * BLOCK]), last=False)
    store.write("k", {}, offset=2 * BLOCK, data=content[2 * BLOCK : 3 * BLOCK + 9], last=False)
    store.write("k", {}, offset=3 * BLOCK + 9, data=content[3 * BLOCK + 9 : 4 * BLOCK], last=False)
    store.write("k", {}, offset=4 * BLOCK, data=_aligned(content[4 * BLOCK :]), last=True)
    store.finish("k", {})
    assert (tmp_path / "k").read_bytes() == content
    assert writes == [
        (True, 0, 2 * BLOCK),
        (False, 2 * BLOCK, BLOCK + 9),
        (False, 3 * BLOCK + 9, BLOCK - 9),
        (True, 4 * BLOCK, BLOCK),
        (False, 5 * BLOCK, 123),
    ]


def test_a_file_system_without_o_direct_gets_the_bytes_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = local._write_all
    refused: list[int] = []

    def no_direct(path: Path, flags: int, view: memoryview, offset: int) -> None:
        if flags:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        real_write_all(path, flags, view, offset)

    monkeypatch.setattr(local, "_write_all", no_direct)
    content = os.urandom(4 * BLOCK)
    store = LocalStore(tmp_path)
    store.write("k", {}, offset=0, data=_aligned(content[: 2 * BLOCK]), last=False)
    store.write("k", {}, offset=2 * BLOCK, data=_aligned(content[2 * BLOCK :]), last=True)
    store.finish("k", {})
    assert (tmp_path / "k").read_bytes() == content
    assert refused == [0]  # tried once, then not again
