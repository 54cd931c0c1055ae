"""An output's bytes: a file as it is, a directory as a deterministic, seekable tar."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest

from training_agent.reporting.archive import (
    FileSource,
    HashStopped,
    OutputChanged,
    TarSource,
    open_source,
    sha256_of,
)


def model_dir(root: Path) -> Path:
    folder = root / "final_adapter"
    (folder / "nested").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(70_001))
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "nested" / "empty.bin").write_bytes(b"")
    (folder / "nested" / "tokenizer.json").write_bytes(os.urandom(1_500))
    return folder


def whole(source: TarSource | FileSource) -> bytes:
    return source.read(0, source.size)


def test_a_file_reads_at_any_offset_and_hashes_like_hashlib(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    (tmp_path / "m.bin").write_bytes(data)
    with FileSource(tmp_path / "m.bin") as source:
        assert source.size == len(data)
        assert source.read(1234, 100) == data[1234:1334]
        assert source.read(9_990, 100) == data[9_990:]
        assert sha256_of(source) == hashlib.sha256(data).hexdigest()
    assert open_source(tmp_path, is_dir=True).size > 0


def test_a_directory_is_a_tar_that_tarfile_reads_back(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    with TarSource(folder) as source:
        data = whole(source)
        digest = sha256_of(source)

    assert len(data) == source.size
    assert digest == hashlib.sha256(data).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        weights = archive.extractfile("final_adapter/adapter_model.safetensors")
        assert (
            weights is not None
            and weights.read() == (folder / "adapter_model.safetensors").read_bytes()
        )
        assert archive.getmember("final_adapter/nested/empty.bin").size == 0
    assert names == [
        "final_adapter",
        "final_adapter/adapter_config.json",
        "final_adapter/adapter_model.safetensors",
        "final_adapter/nested",
        "final_adapter/nested/empty.bin",
        "final_adapter/nested/tokenizer.json",
    ]


def test_the_archive_is_the_same_bytes_every_time_and_from_any_offset(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    with TarSource(folder) as first, TarSource(folder) as second:
        data = whole(first)
        assert whole(second) == data
        assert first.fingerprint == second.fingerprint

        rng = random.Random(7)
        for _ in range(200):
            offset = rng.randrange(0, first.size)
            length = rng.randrange(1, 20_000)
            assert second.read(offset, length) == data[offset : offset + length]


def test_symlinks_are_left_out_and_counted(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    (tmp_path / "secret").write_text("not for the platform")
    (folder / "link").symlink_to(tmp_path / "secret")

    with TarSource(folder) as source:
        data = whole(source)

    assert source.skipped == 1
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert "final_adapter/link" not in archive.getnames()


def test_a_change_moves_the_fingerprint(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    source = TarSource(folder)
    assert source.current_fingerprint() == source.fingerprint

    (folder / "adapter_config.json").write_text('{"r": 16, "alpha": 32}')

    assert source.current_fingerprint() != source.fingerprint


def test_a_file_that_shrinks_while_read_is_reported(tmp_path: Path) -> None:
    folder = model_dir(tmp_path)
    with TarSource(folder) as source:
        (folder / "adapter_model.safetensors").write_bytes(b"short")
        with pytest.raises(OutputChanged):
            whole(source)

    single = tmp_path / "single.bin"
    single.write_bytes(os.urandom(5_000))
    with FileSource(single) as file_source:
        single.write_bytes(b"x")
        with pytest.raises(OutputChanged):
            file_source.read(0, 5_000)


def test_hashing_stops_when_told(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(os.urandom(10_000))
    stop = threading.Event()
    stop.set()
    with FileSource(tmp_path / "m.bin") as source, pytest.raises(HashStopped):
        sha256_of(source, stop=stop)
