"""The pieces under the chunk protocol: HTTP ranges, the running hashes and the buffers
chunks are received into."""

from __future__ import annotations

import hashlib

import pytest

from training_backend.services.byte_ranges import Unsatisfiable, requested_range
from training_backend.services.chunk_buffers import ChunkBuffers
from training_backend.services.upload_hashes import UploadHashes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=10-", (10, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=5-3", None),  # invalid: the whole body
        ("bytes=0-1,5-6", None),  # several ranges: the whole body, as the RFC allows
        ("items=0-1", None),
        ("bytes=-", None),
        (None, None),
    ],
)
def test_a_range_header_gives_a_span_or_the_whole_body(
    header: str | None, expected: tuple[int, int] | None
) -> None:
    assert requested_range(header, size=100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=150-200"])
def test_a_range_past_the_end_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        requested_range(header, size=100)


def test_a_running_hash_gives_the_digest_of_chunks_sent_in_order() -> None:
    hashes = UploadHashes()
    hashes.add("a", offset=0, data=b"hello ")
    hashes.add("a", offset=6, data=b"world")
    assert hashes.digest("a", size=11) == hashlib.sha256(b"hello world").hexdigest()
    assert hashes.digest("a", size=11) is None  # taken


def test_a_chunk_out_of_order_or_a_short_count_gives_no_digest() -> None:
    hashes = UploadHashes()
    hashes.add("a", offset=0, data=b"hello ")
    hashes.add("a", offset=7, data=b"orld")
    hashes.add("b", offset=0, data=b"abc")
    assert hashes.digest("a", size=11) is None
    assert hashes.digest("b", size=4) is None


def test_the_oldest_running_hashes_are_dropped_past_the_limit() -> None:
    hashes = UploadHashes(max_entries=2)
    for name in ("a", "b", "c"):
        hashes.add(name, offset=0, data=b"x")
    assert hashes.digest("a", size=1) is None
    assert hashes.digest("c", size=1) == hashlib.sha256(b"x").hexdigest()


def test_a_chunk_buffer_is_used_again_by_the_next_chunk() -> None:
    buffers = ChunkBuffers(1024)
    with buffers.borrowed() as first:
        first[:3] = b"abc"
    with buffers.borrowed() as second:
        assert second is first  # no new chunk-sized memory per chunk
        assert len(second) == 1024
    assert buffers.idle == 1


def test_chunks_at_once_get_their_own_buffers_and_only_a_few_are_kept() -> None:
    buffers = ChunkBuffers(16, keep=2)
    with buffers.borrowed() as a, buffers.borrowed() as b, buffers.borrowed() as c:
        assert len({id(a), id(b), id(c)}) == 3
    assert buffers.idle == 2
